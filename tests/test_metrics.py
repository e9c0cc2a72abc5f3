"""GatewayMetrics counts calls in plain Python and writes the totals into prometheus-client's
children before a scrape (gateway/metrics.py). What /metrics says must be what feeding
prometheus-client call by call says: these tests keep that call-by-call way as the oracle
(`_oracle_record`, the previous `GatewayMetrics.record`), so a prometheus-client upgrade that
changes the private attributes the totals are written to fails here."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import BreakerConfig
from gateway.metrics import (
    _LATENCY_BUCKETS,
    _OVERHEAD_BUCKETS,
    _TTFT_BUCKETS,
    NONE,
    REFUSED,
    GatewayMetrics,
)
from gateway.routing.health import HealthBoard
from gateway.usage import Usage, UsageEvent


def _metrics() -> GatewayMetrics:
    return GatewayMetrics(HealthBoard(BreakerConfig()), ["deepseek/deepseek-v4-flash"])


def _oracle_record(m: GatewayMetrics, event: UsageEvent) -> None:
    """The call-by-call updates GatewayMetrics.record made before it counted in plain Python."""
    status, model, api = event.status, event.model or NONE, event.api or NONE
    mode = event.thinking if event.thinking in ("off", "low", "high", "max") else NONE
    if status == REFUSED:
        m.requests.labels(api, model, NONE, status, m._reason(event.error_type), mode).inc()
        return
    provider = event.provider or NONE
    m.requests.labels(api, model, provider, status, "", mode).inc()
    for attempt_provider, outcome in event.attempts:
        m.attempts.labels(attempt_provider, outcome).inc()
    if event.provider is None:
        return
    m.duration.labels(model, provider).observe(event.latency_s)
    if event.ttft_s is not None:
        m.ttft.labels(model, provider).observe(event.ttft_s)
    if event.overhead_s is not None:
        m.overhead.labels(api).observe(max(0.0, event.overhead_s))
    usage = event.usage
    if usage is not None:
        m.tokens.labels(model, provider, "prompt", mode).inc(usage.prompt_tokens)
        m.tokens.labels(model, provider, "completion", mode).inc(usage.completion_tokens)
        if usage.cache_hit_tokens:
            m.tokens.labels(model, provider, "cache_hit", mode).inc(usage.cache_hit_tokens)
        if usage.reasoning_tokens:
            m.tokens.labels(model, provider, "reasoning", mode).inc(usage.reasoning_tokens)
    if event.cost_usd:
        m.cost.labels(model, provider).inc(event.cost_usd)


# Times on bucket bounds, between them, beyond the last, zero; overheads below zero.
_TIMES = [0.0, 0.01, 0.05, 0.0500001, 0.1, 0.3, 1.0, 2.5, 30.0, 599.9, 1800.0, 1e6,
          math.inf, 0.0001, 0.00025, 0.07, 1e-9]


def _events() -> list[UsageEvent]:
    events = []
    for i in range(200):
        t = _TIMES[i % len(_TIMES)]
        served = i % 7 != 3
        status = REFUSED if i % 11 == 5 else ("ok" if i % 5 else "error")
        usage = None if i % 13 == 0 else Usage(
            prompt_tokens=i * 3, completion_tokens=i % 17, cache_hit_tokens=i % 4 or None,
            reasoning_tokens=i % 3, estimated=i % 2 == 0)
        events.append(UsageEvent(
            request_id=f"req-{i}", requested_model="m", model=("deepseek-v4-flash", "", "x")[i % 3],
            thinking=("off", "high", "", "weird")[i % 4], stream=i % 2 == 0, status=status,
            provider=("deepseek" if i % 2 else "ollama") if served else None,
            upstream_model="u", usage=usage,
            attempts=[("ollama", "503"), ("deepseek", "200")][: i % 3],
            error_type=(None, "rate_limit_exceeded", "", "model_not_found")[i % 4],
            latency_s=t, ttft_s=None if i % 6 == 0 else t / 3,
            overhead_s=None if i % 9 == 0 else (t - 0.002 if i % 2 else -0.001),
            cost_usd=(None, 0.0, 0.1 + i * 1e-7, 1 / 3)[i % 4],
            api=("openai.chat", "anthropic.messages", "")[i % 3]))
    return events


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but `_created` (the time a series was first used: not comparable)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if not s.name.endswith("_created")}


def _text(m: GatewayMetrics) -> str:
    return m.render()[0].decode()


def _same(got: str, want: str) -> None:
    """Same series, same values (inf and -inf included), same lines bar `_created`."""
    assert _samples(got) == _samples(want)
    keep = [line for line in got.splitlines() if "_created" not in line]
    assert keep == [line for line in want.splitlines() if "_created" not in line]


def test_metrics_say_what_call_by_call_updates_say() -> None:
    counted, oracle = _metrics(), _metrics()
    for i, event in enumerate(_events()):
        counted.record(event)
        _oracle_record(oracle, event)
        if i % 37 == 0:  # scrapes in between: the totals are written, not added again
            _same(_text(counted), _text(oracle))
    _same(_text(counted), _text(oracle))
    _same(_text(counted), _text(oracle))


def test_every_series_shows_only_once_counted_in() -> None:
    m = _metrics()
    assert "gateway_requests_total{" not in _text(m)
    m.record(UsageEvent(request_id="r", requested_model="m", model="deepseek-v4-flash",
                        thinking="off", stream=False, status="error", provider=None,
                        attempts=[("deepseek", "timeout")]))
    text = _text(m)
    assert "gateway_requests_total{" in text and "gateway_upstream_attempts_total{" in text
    for name in ("gateway_request_duration_seconds_count{", "gateway_tokens_total{",
                 "gateway_cost_usd_total{", "gateway_overhead_seconds_count{"):
        assert name not in text


@pytest.mark.parametrize(("usage", "cost"), [
    (Usage(prompt_tokens=-1), None), (Usage(completion_tokens=-2), None),
    (Usage(cache_hit_tokens=-3), None), (Usage(reasoning_tokens=-4), None), (None, -0.5)])
def test_a_negative_count_is_refused_as_prometheus_client_refuses_it(
    usage: Usage | None, cost: float | None
) -> None:
    m = _metrics()
    event = UsageEvent(request_id="r", requested_model="m", model="deepseek-v4-flash",
                       thinking="off", stream=False, status="ok", provider="deepseek",
                       usage=usage, cost_usd=cost)
    with pytest.raises(ValueError, match="non-negative"):
        _oracle_record(_metrics(), event)
    with pytest.raises(ValueError, match="non-negative"):
        m.record(event)


def test_every_bucket_bound_counts_as_prometheus_client_counts_it() -> None:
    """Each histogram's bounds, and just below and above them, through latency, TTFT and
    overhead: the same bucket as `Histogram.observe` picks (an amount on a bound counts in
    that bound's bucket), the same sums."""
    counted, oracle = _metrics(), _metrics()
    bounds = {*_LATENCY_BUCKETS, *_TTFT_BUCKETS, *_OVERHEAD_BUCKETS}
    for bound in sorted(bounds):
        for x in (float(bound), bound * (1 - 1e-12), bound * (1 + 1e-12), -bound):
            event = UsageEvent(request_id="r", requested_model="m", model="deepseek-v4-flash",
                               thinking="off", stream=False, status="ok", provider="deepseek",
                               latency_s=x, ttft_s=x, overhead_s=x)
            counted.record(event)
            _oracle_record(oracle, event)
    _same(_text(counted), _text(oracle))


def test_a_thread_applying_meanwhile_loses_no_count() -> None:
    """The multiprocess files' thread applies while the loop counts: every call still shows
    in the next scrape."""
    m = _metrics()
    event = UsageEvent(request_id="r", requested_model="m", model="deepseek-v4-flash",
                       thinking="off", stream=False, status="ok", provider="deepseek",
                       attempts=[("deepseek", "200")], latency_s=0.3, ttft_s=0.1,
                       overhead_s=0.001, usage=Usage(prompt_tokens=3, completion_tokens=2),
                       cost_usd=0.5)
    stop = threading.Event()

    def apply_often() -> None:
        while not stop.is_set():
            m._apply()

    thread = threading.Thread(target=apply_often)
    thread.start()
    try:
        for _ in range(20_000):
            m.record(event)
    finally:
        stop.set()
        thread.join()
    s = _samples(_text(m))
    served = (("model", "deepseek-v4-flash"), ("provider", "deepseek"))
    assert s[("gateway_request_duration_seconds_count", served)] == 20_000
    assert s[("gateway_tokens_total", (*served, ("thinking", "off"), ("type", "prompt")))] \
        == 60_000
    assert s[("gateway_upstream_attempts_total", (("outcome", "200"),
                                                  ("provider", "deepseek")))] == 20_000


SCRIPT = r'''
import sys
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
sys.path.insert(0, sys.argv[1])
from test_metrics import _events, _metrics
m = _metrics()
for event in _events():
    m.record(event)
if sys.argv[2] == "scrape":
    print(m.render()[0].decode())
# else: nothing flushed by hand; the exit writes the files
'''


def test_with_workers_the_files_hold_every_call(tmp_path: Path) -> None:
    """Multiprocess mode: a scrape and the exit's flush write the counted totals."""
    here = str(Path(__file__).resolve().parent)
    root = str(Path(__file__).resolve().parent.parent)

    def run(dir_: Path, how: str) -> str:
        dir_.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, here, how], capture_output=True, text=True,
            timeout=60, env={"PROMETHEUS_MULTIPROC_DIR": str(dir_), "PATH": "/usr/bin:/bin",
                             "PYTHONPATH": root})
        assert done.returncode == 0, done.stderr
        return done.stdout

    oracle = _metrics()
    for event in _events():
        _oracle_record(oracle, event)
    want = {k: v for k, v in _samples(_text(oracle)).items()
            if k[0].startswith(("gateway_requests", "gateway_tokens", "gateway_cost",
                                "gateway_request_duration", "gateway_time_to_first",
                                "gateway_overhead", "gateway_upstream"))}
    assert _samples(run(tmp_path / "scrape", "scrape")).items() >= want.items()
    run(tmp_path / "exit", "exit")
    check = subprocess.run(
        [sys.executable, "-c",
         "from prometheus_client import CollectorRegistry, generate_latest\n"
         "from prometheus_client.multiprocess import MultiProcessCollector\n"
         "r = CollectorRegistry(); MultiProcessCollector(r)\n"
         "print(generate_latest(r).decode())"],
        capture_output=True, text=True, timeout=60,
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "exit"), "PATH": "/usr/bin:/bin"})
    assert _samples(check.stdout).items() >= want.items()
