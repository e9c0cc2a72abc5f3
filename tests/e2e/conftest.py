"""End-to-end fixtures: three simulated providers (real HTTP on loopback) shared by the
session, reset before each test, and a factory for real gateways configured against them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from gateway.app import create_app
from gateway.config import load_config
from tests.server import CollectingSink, GatewayServer
from tests.upstream.common import SimulatedProvider
from tests.upstream.deepseek import SimulatedDeepSeek
from tests.upstream.ollama import SimulatedOllama
from tests.upstream.openrouter import SimulatedOpenRouter

ENV_NAMES = {"deepseek": "DEEPSEEK", "openrouter": "OPENROUTER", "ollama": "OLLAMA"}


@dataclass
class Upstreams:
    deepseek: SimulatedDeepSeek
    openrouter: SimulatedOpenRouter
    ollama: SimulatedOllama

    def __getitem__(self, name: str) -> SimulatedProvider:
        sim: SimulatedProvider = getattr(self, name)
        return sim

    def all(self) -> list[SimulatedProvider]:
        return [self.deepseek, self.openrouter, self.ollama]


@dataclass
class RunningGateway:
    url: str
    sink: CollectingSink
    server: GatewayServer

    def openai(self, api_key: str = "unused", **kwargs: object) -> OpenAI:
        return OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0,
                      timeout=20, **kwargs)  # type: ignore[arg-type]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20)


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    sims = Upstreams(SimulatedDeepSeek(), SimulatedOpenRouter(), SimulatedOllama())
    for sim in sims.all():
        sim.start()
    yield sims
    for sim in sims.all():
        sim.stop()


@pytest.fixture(autouse=True)
def _fresh_upstreams(upstreams: Upstreams) -> None:
    for sim in upstreams.all():
        sim.reset()


GatewayFactory = Callable[..., RunningGateway]


@pytest.fixture
def make_gateway(upstreams: Upstreams, tmp_path: Path) -> Iterator[GatewayFactory]:
    """`make_gateway(providers=[...], yaml="...", env={...})` starts a real gateway whose
    providers (in failover order) point at the simulators."""
    started: list[GatewayServer] = []

    def make(providers: tuple[str, ...] | list[str] = ("deepseek", "openrouter", "ollama"),
             yaml: str = "", env: dict[str, str] | None = None) -> RunningGateway:
        environment: dict[str, str] = {}
        for name in providers:
            prefix = ENV_NAMES[name]
            environment[f"{prefix}_API_KEY"] = upstreams[name].key
            environment[f"{prefix}_BASE_URL"] = upstreams[name].base_url
        environment.update(env or {})
        if "metering:" not in yaml:  # any usage spool stays in the test's tmp dir
            yaml += f"\nmetering: {{spool_path: {tmp_path / f'spool-{len(started)}'}}}\n"
        path = None
        if yaml:
            path = tmp_path / f"gateway-{len(started)}.yaml"
            path.write_text(yaml)
        custom_order = list(providers) not in ([], ["deepseek", "openrouter", "ollama"])
        if custom_order and "routes:" not in yaml:
            # keep the caller's order as the failover order
            route = "".join(f"    - provider: {p}\n" for p in providers)
            extra = path.read_text() + "\n" if path else ""
            path = tmp_path / f"gateway-{len(started)}-routes.yaml"
            path.write_text(extra + "routes:\n  deepseek-v4-flash:\n" + route
                            + "  deepseek-v4-pro:\n" + route)
        sink = CollectingSink()
        app = create_app(load_config(path, env=environment), usage_sink=sink)
        server = GatewayServer(app).start()
        started.append(server)
        return RunningGateway(server.url, sink, server)

    yield make
    for server in started:
        server.stop()
