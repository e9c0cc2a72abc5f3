"""`/metrics` through real HTTP: the numbers a dashboard reads, and that they stay clean."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import GatewayFactory, Upstreams
from tests.upstream.common import Faults

MESSAGES = [{"role": "user", "content": "three little words"}]


def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(base_url + "/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


def test_requests_tokens_and_latency_are_counted(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["deepseek"])
    client = gateway.openai()
    for _ in range(3):
        client.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    stream = client.chat.completions.create(model="deepseek-reasoner", messages=MESSAGES,
                                            stream=True)
    for _ in stream:
        pass
    m = scrape(gateway.url)
    flash = {"model": "deepseek-v4-flash", "provider": "deepseek"}
    assert value(m, "gateway_requests_total", status="ok", **flash) == 4
    # 3 words of prompt each; completions "echo: three little words" (4) plus, for the
    # reasoner, "thinking about: three little words" (5)
    assert value(m, "gateway_tokens_total", type="prompt", **flash) == 12
    assert value(m, "gateway_tokens_total", type="completion", **flash) == 3 * 4 + 9
    assert value(m, "gateway_tokens_total", type="reasoning", **flash) == 5
    assert value(m, "gateway_request_duration_seconds_count", **flash) == 4
    assert value(m, "gateway_time_to_first_token_seconds_count", **flash) == 4
    assert value(m, "gateway_overhead_seconds_count") == 4
    assert value(m, "gateway_upstream_attempts_total", provider="deepseek", outcome="200") == 4
    assert value(m, "gateway_in_flight_requests") == 0
    # the price book's DeepSeek flash price on today's date, for the same tokens
    assert value(m, "gateway_cost_usd_total", **flash) > 0
    assert sum(e.cost_usd or 0 for e in gateway.sink.events) == pytest.approx(
        value(m, "gateway_cost_usd_total", **flash))
    assert value(m, "gateway_breaker_state", provider="deepseek",
                 upstream_model="deepseek-v4-flash") == 0


def test_failovers_errors_and_open_breakers_show(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    upstreams.ollama.faults = Faults(status=503)
    gateway = make_gateway(["ollama", "deepseek"], yaml=(
        "routing:\n  breaker: {consecutive_failures: 2, cooldown: 60}\n"))
    client = gateway.openai()
    for _ in range(3):
        client.chat.completions.create(model="deepseek-v4-flash", messages=MESSAGES)
    m = scrape(gateway.url)
    assert value(m, "gateway_upstream_attempts_total", provider="ollama", outcome="503") == 2
    assert value(m, "gateway_upstream_attempts_total", provider="deepseek", outcome="200") == 3
    assert value(m, "gateway_breaker_state", provider="ollama",
                 upstream_model="deepseek-v4-flash") == 2
    upstreams.deepseek.faults = Faults(status=400)
    with httpx.Client(base_url=gateway.url) as http:
        http.post("/v1/chat/completions", json={"model": "deepseek-v4-flash",
                                                "messages": MESSAGES})
    m = scrape(gateway.url)
    assert value(m, "gateway_requests_total", model="deepseek-v4-flash", provider="none",
                 status="error") == 1


def test_metrics_carry_no_ids_keys_or_client_strings(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["openrouter"])
    gateway.openai().chat.completions.create(
        model="deepseek-v4-flash", messages=MESSAGES, user="alice@example.com",
        extra_headers={"x-request-id": "req-visible-nowhere"})
    text = httpx.get(gateway.url + "/metrics").text
    for secret in (upstreams.openrouter.key, "alice@example.com", "req-visible-nowhere"):
        assert secret not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_several_worker_processes_report_one_total(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    """`gateway serve --workers 2`: requests land on either worker; /metrics sums both."""
    port = _free_port()
    env = {**os.environ, "DEEPSEEK_API_KEY": upstreams.deepseek.key,
           "DEEPSEEK_BASE_URL": upstreams.deepseek.base_url,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'usage.db'}"}
    for name in ("OPENROUTER_API_KEY", "OLLAMA_API_KEY", "GATEWAY_MASTER_KEY"):
        env.pop(name, None)
    (tmp_path / "metrics").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--workers", "2",
         "--log-level", "warning"], env=env, start_new_session=True, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.1)
        n = 40
        for _ in range(n):  # new connection each time: the kernel spreads them over workers
            with httpx.Client() as http:
                r = http.post(base + "/v1/chat/completions",
                              json={"model": "deepseek-chat", "messages": MESSAGES})
                assert r.status_code == 200
        for _ in range(3):  # whichever worker answers the scrape, the total is the same
            m = scrape(base)
            assert value(m, "gateway_requests_total", model="deepseek-v4-flash",
                         provider="deepseek", status="ok") == n
        assert len(list((tmp_path / "metrics").glob("counter_*.db"))) == 2  # both served
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_the_usage_writer_reports_its_backlog(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = make_gateway(["deepseek"], env={"DATABASE_URL": f"sqlite:///{tmp_path}/u.db"},
                           yaml=f"metering: {{spool_path: {tmp_path / 'spool'}}}\n")
    gateway.openai().chat.completions.create(model="deepseek-v4-flash", messages=MESSAGES)
    m = scrape(gateway.url)
    for name in ("gateway_usage_queue_depth", "gateway_usage_spooled_rows",
                 "gateway_usage_rejected_rows"):
        assert (name, ()) in m
    assert value(m, "gateway_usage_spooled_rows") == 0
