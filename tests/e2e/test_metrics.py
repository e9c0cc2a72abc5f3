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

from gateway.config import BreakerConfig
from gateway.metrics import MAX_REASONS, OTHER_REASON, GatewayMetrics
from gateway.routing.health import HealthBoard
from gateway.usage import Usage, UsageEvent
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
    """The sum over every series of `name` that has these label values (and maybe others,
    e.g. `api` and `reason`, which a test that does not name them does not care about)."""
    want = set(labels.items())
    return float(sum(v for (n, have), v in samples.items() if n == name and want <= set(have)))


def series_of(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
              **labels: str) -> list[dict[str, str]]:
    """The full label sets of the series of `name` that have these label values."""
    want = set(labels.items())
    return [dict(have) for (n, have) in samples if n == name and want <= set(have)]


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
                 upstream_model="deepseek-flash") == 0


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
                 upstream_model="deepseek-v4.1-flash") == 2  # V4.1 under Ollama's name
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


def total_ok(samples: dict) -> float:
    return value(samples, "gateway_requests_total", model="deepseek-v4-flash",
                 provider="deepseek", status="ok")


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
        # Each worker writes its values to the shared files once a second (metrics_files).
        deadline = time.monotonic() + 3
        while total_ok(scrape(base)) != n and time.monotonic() < deadline:
            time.sleep(0.1)
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


def _refused(api: str, model: str, reason: str, requested: str = "") -> UsageEvent:
    # what the pipeline hands its sinks for a refusal: no provider; usage and timings, were a
    # bug to set them, must not reach any histogram
    return UsageEvent(request_id="req-refused", requested_model=requested, model=model,
                      thinking="off", stream=False, status="refused", error_type=reason,
                      api=api, latency_s=0.002, ttft_s=0.001, overhead_s=0.0001,
                      usage=Usage(prompt_tokens=50, completion_tokens=5), cost_usd=1.0)


def test_refusals_and_client_apis_are_labelled(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    """`api` on requests and overhead, `reason` on refusals only, model "none" for a refusal
    before the model was known; a refusal is a count and nothing else."""
    upstreams.deepseek.faults = Faults(status=400)  # an upstream's own error code: no label
    gateway = make_gateway(["deepseek"])
    with httpx.Client(base_url=gateway.url) as http:
        http.post("/v1/chat/completions", json={"model": "deepseek-v4-flash",
                                                "messages": MESSAGES})
    upstreams.deepseek.faults = Faults()
    gateway.openai().chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    [error, ok] = gateway.sink.events
    assert error.status == "error" and error.error_type and ok.status == "ok"
    metrics: GatewayMetrics = gateway.server.app.state.gateway.metrics  # type: ignore[attr-defined]
    # the pipeline's events for what it refuses and for a call served through the Anthropic
    # Messages API (recorded straight into the gateway's metrics sink)
    metrics.record(_refused("anthropic.messages", "", "invalid_api_key",
                            requested="client-typed-model-name"))
    metrics.record(_refused("openai.chat", "deepseek-v4-flash", "rate_limit_exceeded"))
    metrics.record(_refused("openai.chat", "deepseek-v4-flash", "rate_limit_exceeded"))
    metrics.record(UsageEvent(
        request_id="req-anthropic", requested_model="deepseek-chat", model="deepseek-v4-flash",
        thinking="off", stream=True, status="ok", provider="deepseek",
        upstream_model="deepseek-v4-flash", attempts=[("deepseek", "200")],
        usage=Usage(prompt_tokens=7, completion_tokens=3), latency_s=0.5, ttft_s=0.1,
        overhead_s=0.0003, cost_usd=0.25, api="anthropic.messages"))

    text = httpx.get(gateway.url + "/metrics").text
    # the thinking mode is a label too (issue 12)
    assert ('gateway_requests_total{api="anthropic.messages",model="none",provider="none",'
            'reason="invalid_api_key",status="refused",thinking="off"} 1.0') in text
    assert ('gateway_requests_total{api="openai.chat",model="deepseek-v4-flash",'
            'provider="none",reason="rate_limit_exceeded",status="refused",thinking="off"} 2.0'
            ) in text
    assert ('gateway_requests_total{api="anthropic.messages",model="deepseek-v4-flash",'
            'provider="deepseek",reason="",status="ok",thinking="off"} 1.0') in text
    assert "client-typed-model-name" not in text
    assert error.error_type not in text  # the upstream's code: never a label value
    m = scrape(gateway.url)
    served = {"model": "deepseek-v4-flash", "provider": "deepseek"}
    assert value(m, "gateway_requests_total", api="openai.chat", status="ok", reason="",
                 **served) == 1
    assert series_of(m, "gateway_requests_total", status="error") == [
        {"api": "openai.chat", "model": "deepseek-v4-flash", "provider": "none",
         "reason": "", "status": "error", "thinking": "high"}]
    assert value(m, "gateway_requests_total", status="refused") == 3
    assert value(m, "gateway_requests_total") == 6
    # a refusal never reaches latency, TTFT, overhead, tokens or cost
    assert value(m, "gateway_request_duration_seconds_count") == 2
    assert value(m, "gateway_time_to_first_token_seconds_count") == 2
    assert value(m, "gateway_overhead_seconds_count") == 2
    assert value(m, "gateway_overhead_seconds_count", api="anthropic.messages") == 1
    assert value(m, "gateway_overhead_seconds_count", api="openai.chat") == 1
    assert value(m, "gateway_tokens_total", type="prompt") == 3 + 7
    assert value(m, "gateway_cost_usd_total") == pytest.approx(
        (ok.cost_usd or 0) + 0.25)
    for name in ("gateway_request_duration_seconds_count", "gateway_tokens_total",
                 "gateway_time_to_first_token_seconds_count", "gateway_cost_usd_total"):
        assert all(labels["model"] != "none" for labels in series_of(m, name)), name
        assert all("api" not in labels for labels in series_of(m, name)), name


def test_refusal_reasons_stay_a_bounded_label() -> None:
    """The reason is the gateway's own code; should anything else ever be fed in, distinct
    values past the cap count as "other" instead of growing the series without end."""
    metrics = GatewayMetrics(HealthBoard(BreakerConfig()), [])
    for i in range(MAX_REASONS + 10):
        metrics.record(_refused("openai.chat", "", f"reason_{i}"))
    metrics.record(_refused("openai.chat", "", "reason_0"))
    metrics.record(_refused("openai.chat", "", ""))
    text = metrics.render()[0].decode()
    samples = {tuple(sorted(s.labels.items())): s.value
               for f in text_string_to_metric_families(text) if f.name == "gateway_requests"
               for s in f.samples if s.name == "gateway_requests_total"}
    reasons = {dict(labels)["reason"]: v for labels, v in samples.items()}
    assert len(reasons) == MAX_REASONS + 2  # the first ones, "other" and "unknown"
    assert reasons["reason_0"] == 2 and reasons[OTHER_REASON] == 10
    assert reasons["unknown"] == 1  # a refusal without a reason still counts


def test_in_flight_counts_a_live_stream_and_drops_when_it_ends(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    upstreams.deepseek.faults = Faults(chunk_delay_ms=150)  # a stream of a couple of seconds
    gateway = make_gateway(["deepseek"])
    client = gateway.openai()
    stream = client.chat.completions.create(model="deepseek-chat", messages=MESSAGES,
                                            stream=True)
    next(iter(stream))  # the call is being served
    assert value(scrape(gateway.url), "gateway_in_flight_requests") == 1
    for _ in stream:
        pass
    assert value(scrape(gateway.url), "gateway_in_flight_requests") == 0
