"""Builders shared by the routing unit tests: real configs and providers, no network."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.config import GatewayConfig, load_config
from gateway.metering.setup import price_book
from gateway.providers import build_provider
from gateway.providers.base import Provider
from gateway.reasoning_memory import ReasoningMemory
from gateway.routing.policy import RouteTable

ALL_KEYS = {"DEEPSEEK_API_KEY": "sk-ds", "OPENROUTER_API_KEY": "sk-or", "OLLAMA_API_KEY": "sk-ol"}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def config(tmp_path: Path | None = None, yaml: str = "",
           env: dict[str, str] | None = None) -> GatewayConfig:
    """A config from the shipped defaults, an optional YAML text and `env` (all keys by default)."""
    path = None
    if yaml:
        assert tmp_path is not None
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml)
    return load_config(path, env=ALL_KEYS if env is None else env)


def providers(cfg: GatewayConfig) -> dict[str, Provider]:
    """Providers as the app builds them: only the usable ones, in declared order."""
    memory = ReasoningMemory()
    return {name: build_provider(name, p, memory) for name, p in cfg.usable_providers().items()}


def table(cfg: GatewayConfig, at: datetime | None = None) -> RouteTable:
    """The app's route table, priced from the app's price book (at `at`, default now)."""
    return RouteTable(cfg, providers(cfg), price_book(cfg),
                      (lambda: at) if at is not None else lambda: datetime.now(UTC))
