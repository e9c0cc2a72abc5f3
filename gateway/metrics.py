"""Prometheus metrics: what a team's dashboard and an operator's alerts read from `/metrics`.

`GatewayMetrics` owns its own registry (no module-level state) and is itself a usage sink: each
finished request's event becomes counter and histogram updates, so the hot path pays one call.
Gauges that describe state rather than events (breakers, the usage writer's queue) are read at
scrape time by a collector.

Several worker processes: when `PROMETHEUS_MULTIPROC_DIR` is set (`gateway serve --workers N`
sets it), prometheus-client keeps values in shared files and `/metrics` merges every worker's.

Label sets stay bounded: canonical model names, provider names, the client API (a handful of
surfaces), the thinking mode (off / low / high / max) and fixed status words only; never
request ids, keys or client-supplied strings.
`reason` is set only for refusals (status `refused`), from the gateway's own small set of codes;
an upstream's error codes are unbounded and never become a label. A call refused before its
model was resolved counts under model "none", like a call no provider served counts under
provider "none". Refusals count as requests only: no latency, tokens or cost.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway import metrics_files
from gateway.routing.health import BreakerState, HealthBoard
from gateway.usage import UsageEvent

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# LLM answers take from ~100 ms to many minutes.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}

StateProbe = Callable[[], float]

REFUSED = "refused"
NONE = "none"  # the label value for "no model / no provider / no API"
# Refusal reasons come from the gateway's own code, so they are few; should a bug ever feed
# something else in, distinct values beyond this many are counted as "other".
MAX_REASONS = 32
OTHER_REASON = "other"


class GatewayMetrics:
    def __init__(self, board: HealthBoard, target_keys: list[str]) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # Values reach the shared files once a second, not on every change (metrics_files).
        self._files = metrics_files.install() if self.multiprocess else None
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode values live in files; the metric objects must not be registered
        # (the MultiProcessCollector reads them all back at scrape time).
        own = None if self.multiprocess else self.registry
        self.requests = Counter(
            "gateway_requests",
            "Calls by client API, thinking mode and outcome; `reason` is the refusal code for "
            "status refused.",
            ["api", "model", "provider", "status", "reason", "thinking"], registry=own)
        self.duration = Histogram(
            "gateway_request_duration_seconds", "Time from request to the end of the answer.",
            ["model", "provider"], buckets=_LATENCY_BUCKETS, registry=own)
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds", "Time from request to the first token.",
            ["model", "provider"], buckets=_TTFT_BUCKETS, registry=own)
        self.tokens = Counter(
            "gateway_tokens", "Tokens by type (prompt, cache_hit, completion, reasoning) and "
            "thinking mode.",
            ["model", "provider", "type", "thinking"], registry=own)
        self.cost = Counter(
            "gateway_cost_usd", "Metered cost in US dollars.",
            ["model", "provider"], registry=own)
        self.attempts = Counter(
            "gateway_upstream_attempts", "Upstream attempts by outcome (HTTP status or kind).",
            ["provider", "outcome"], registry=own)
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "Time the gateway itself adds: latency to the first byte minus upstream time.",
            ["api"], buckets=_OVERHEAD_BUCKETS, registry=own)
        self.in_flight = Gauge(
            "gateway_in_flight_requests", "Chat requests being served now.",
            registry=own, multiprocess_mode="livesum")
        self._in_flight_probe: StateProbe | None = None
        self._state = _StateCollector(board, target_keys)
        # A call is counted in plain Python (`_Count`, `_Hist`), not through prometheus-client
        # (a lock and its checks per `inc`/`observe`: ~70k instructions a call); the totals are
        # written to the prometheus children (`_apply`) before a scrape reads them and before
        # the multiprocess files are written. Per kind of call (api, model, provider, status,
        # thinking) all it touches is in one object (one lookup a call); attempts and refusals
        # per series. Every counted series is in `_counted`, which `_apply` walks, once
        # however many kinds of call add to it.
        self._calls: dict[tuple[str, ...], _CallSeries] = {}
        self._attempts: dict[tuple[str, str], _Count] = {}
        self._refusals: dict[tuple[str, ...], _Count] = {}
        self._counted: list[_Count | _Hist] = []
        self._counted_by: dict[int, _Count | _Hist] = {}  # by id(child): children live on
        self._reasons: set[str] = set()
        if self.multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        if self._files is not None:
            self._files.add_source(self._apply)
        self.registry.register(self._state)

    def count_in_flight(self, probe: StateProbe) -> None:
        """The in-flight gauge is read from `probe` (the drain's set of calls) when the totals
        are applied: a gauge's inc and dec per call were two locks on every request."""
        self._in_flight_probe = probe

    def add_gauge(self, name: str, documentation: str, probe: StateProbe) -> None:
        """Expose values read at scrape time (e.g. the usage writer's queue depth)."""
        self._state.extra.append((name, documentation, probe))

    def count(self, child: Any) -> _Count:
        """The one total of a counter child (several kinds of call share, e.g., a model's
        token series: they add to one total, in the order calls end, as its `inc` did)."""
        counted = self._tally(child, _Count)
        assert isinstance(counted, _Count)
        return counted

    def histogram(self, child: Any) -> _Hist:
        """The one set of bucket counts and sum of a histogram child, as `count`."""
        counted = self._tally(child, _Hist)
        assert isinstance(counted, _Hist)
        return counted

    def _tally(self, child: Any, kind: type[_Count] | type[_Hist]) -> _Count | _Hist:
        counted = self._counted_by.get(id(child))
        if counted is None:
            counted = self._counted_by[id(child)] = kind(child)
            self._counted.append(counted)
        return counted

    def _reason(self, reason: str | None) -> str:
        if not reason:
            return "unknown"
        if reason not in self._reasons:
            if len(self._reasons) >= MAX_REASONS:
                return OTHER_REASON
            self._reasons.add(reason)
        return reason

    def record(self, event: UsageEvent) -> None:
        """UsageSink: one finished request."""
        status = event.status
        model = event.model or NONE
        api = event.api or NONE
        thinking = event.thinking
        mode = thinking if thinking in _MODES else NONE  # "none" before a call was parsed
        if status == REFUSED:  # nothing was served: a count, never a latency or a token
            self._refusal(api, model, self._reason(event.error_type), mode).n += 1
            return
        provider = event.provider or NONE
        key = (api, model, provider, status, mode)
        calls = self._calls.get(key)
        if calls is None:
            calls = self._calls[key] = _CallSeries(self, api, model, provider, status, mode)
        calls.requests.n += 1
        attempts = self._attempts
        for attempt in event.attempts:
            (attempts.get(attempt) or self._attempt(attempt)).n += 1
        if event.provider is None:
            return
        calls.served(event)

    def _refusal(self, api: str, model: str, reason: str, mode: str) -> _Count:
        key = (api, model, reason, mode)
        counted = self._refusals.get(key)
        if counted is None:
            counted = self._refusals[key] = self.count(
                self.requests.labels(api, model, NONE, REFUSED, reason, mode))
        return counted

    def _attempt(self, attempt: tuple[str, str]) -> _Count:
        provider, outcome = attempt
        counted = self._attempts[attempt] = self.count(self.attempts.labels(provider, outcome))
        return counted

    def _apply(self) -> None:
        """Write every counted total to its prometheus child. Only the loop's thread counts;
        this reads (the loop's `render`, or the files' thread under their lock), so nothing is
        lost: a call half counted when it reads is written whole the next time."""
        for counted in tuple(self._counted):  # a snapshot: the loop may add series meanwhile
            counted.apply()
        if self._in_flight_probe is not None:
            self.in_flight.set(self._in_flight_probe())

    def render(self) -> tuple[bytes, str]:
        if self._files is not None:
            # this process's values exact (the flush applies them); the other workers' <= 1 s old
            self._files.flush()
        else:
            self._apply()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_MODES = frozenset({"off", "low", "high", "max"})
_NEGATIVE = "Counters can only be incremented by non-negative amounts."


class _Count:
    """A counter child's total, counted here and written to the child by `apply`."""

    __slots__ = ("child", "n")

    def __init__(self, child: Any) -> None:
        self.child = child
        # An int while only ints were added (calls, tokens: exact either way), a float once a
        # float was (cost: added in the same order as `inc` added it, so the same sum).
        self.n: float = 0

    def apply(self) -> None:
        self.child._value.set(float(self.n))


class _Hist:
    """A histogram child's bucket counts and sum, counted here and written by `apply`.

    `_CallSeries.served` observes as prometheus-client's `Histogram.observe` does: in the
    first bucket whose upper bound is >= the amount (`bisect_left`; its buckets are not
    cumulative until exposition), and adds it to the sum. Amounts are times, never NaN (which
    would count in the first bucket here, in none there). tests/test_metrics.py pins this
    against a plain Histogram."""

    __slots__ = ("bounds", "child", "counts", "sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = child._upper_bounds  # sorted, ending with +Inf
        self.counts = [0] * len(self.bounds)  # ints: no float made per call; exact all the same
        self.sum = 0.0

    def apply(self) -> None:
        child = self.child
        child._sum.set(self.sum)
        for value, count in zip(child._buckets, self.counts, strict=True):
            value.set(float(count))


class _CallSeries:
    """The series one kind of call updates, each resolved (`labels()`) when first used, so
    a series shows in /metrics only once something was counted in it, as before."""

    __slots__ = ("_labels", "_metrics", "cache_hit", "completion", "cost", "duration",
                 "overhead", "prompt", "reasoning", "requests", "ttft")

    def __init__(self, metrics: GatewayMetrics, api: str, model: str, provider: str,
                 status: str, mode: str) -> None:
        self._metrics = metrics
        self._labels = (model, provider, mode, api)
        self.requests = metrics.count(
            metrics.requests.labels(api, model, provider, status, "", mode))
        self.duration: _Hist | None = None
        self.ttft: _Hist | None = None
        self.overhead: _Hist | None = None
        self.prompt: _Count | None = None
        self.completion: _Count | None = None
        self.cache_hit: _Count | None = None
        self.reasoning: _Count | None = None
        self.cost: _Count | None = None

    def served(self, event: UsageEvent) -> None:
        """Latency, TTFT, overhead, tokens and cost of a call an upstream served, each as
        `Histogram.observe` / `Counter.inc` would count it (a negative count refused as
        `inc` refuses it), written out: this runs once a call."""
        hist = self.duration or self.histogram("duration")
        latency = event.latency_s
        hist.counts[bisect_left(hist.bounds, latency)] += 1
        hist.sum += latency
        ttft = event.ttft_s
        if ttft is not None:
            hist = self.ttft or self.histogram("ttft")
            hist.counts[bisect_left(hist.bounds, ttft)] += 1
            hist.sum += ttft
        overhead = event.overhead_s
        if overhead is not None:
            overhead = max(0.0, overhead)
            hist = self.overhead or self.histogram("overhead")
            hist.counts[bisect_left(hist.bounds, overhead)] += 1
            hist.sum += overhead
        usage = event.usage
        if usage is not None:
            tokens = usage.prompt_tokens
            if tokens < 0:
                raise ValueError(_NEGATIVE)
            (self.prompt or self.count("prompt")).n += tokens
            tokens = usage.completion_tokens
            if tokens < 0:
                raise ValueError(_NEGATIVE)
            (self.completion or self.count("completion")).n += tokens
            hit, reasoning = usage.cache_hit_tokens, usage.reasoning_tokens
            if hit:
                if hit < 0:
                    raise ValueError(_NEGATIVE)
                (self.cache_hit or self.count("cache_hit")).n += hit
            if reasoning:
                if reasoning < 0:
                    raise ValueError(_NEGATIVE)
                (self.reasoning or self.count("reasoning")).n += reasoning
        cost = event.cost_usd
        if cost:
            if cost < 0:
                raise ValueError(_NEGATIVE)
            (self.cost or self.count("cost")).n += cost

    def histogram(self, name: str) -> _Hist:
        m = self._metrics
        model, provider, _, api = self._labels
        if name == "overhead":
            self.overhead = counted = m.histogram(m.overhead.labels(api))
        elif name == "ttft":
            self.ttft = counted = m.histogram(m.ttft.labels(model, provider))
        else:
            self.duration = counted = m.histogram(m.duration.labels(model, provider))
        return counted

    def count(self, name: str) -> _Count:
        m = self._metrics
        model, provider, mode, _ = self._labels
        if name == "cost":
            counted = m.count(m.cost.labels(model, provider))
        else:  # prompt, completion, cache_hit, reasoning
            counted = m.count(m.tokens.labels(model, provider, name, mode))
        setattr(self, name, counted)
        return counted


class _StateCollector(Collector):
    """Breaker states and other gauges that are read, not counted."""

    def __init__(self, board: HealthBoard, target_keys: list[str]) -> None:
        self._board = board
        self._keys = sorted(set(target_keys))
        self.extra: list[tuple[str, str, StateProbe]] = []

    def collect(self) -> Iterator[Any]:
        breaker = GaugeMetricFamily(
            "gateway_breaker_state",
            "Circuit breaker per target: 0 closed, 1 half-open, 2 open.",
            labels=["provider", "upstream_model"])
        for key in self._keys:
            provider, _, model = key.partition("/")
            breaker.add_metric([provider, model], _BREAKER_VALUE[self._board.state(key)])
        yield breaker
        cooling = GaugeMetricFamily(
            "gateway_target_cooldown_seconds",
            "Seconds a target still takes no traffic: an upstream's Retry-After, a refused key "
            "or an account out of quota (shared across replicas through Redis).",
            labels=["provider", "upstream_model"])
        for key in self._keys:
            provider, _, model = key.partition("/")
            cooling.add_metric([provider, model], self._board.in_cooldown(key))
        yield cooling
        quota = GaugeMetricFamily(
            "gateway_provider_quota_cooldown_seconds",
            "Seconds an account out of quota (session / weekly usage limit, balance) is still "
            "taken out, as this process saw it run out.",
            labels=["provider", "quota"])
        for name, (kind, left) in sorted(self._board.quota_cooldowns().items()):
            quota.add_metric([name, kind], left)
        yield quota
        for name, documentation, probe in self.extra:
            yield GaugeMetricFamily(name, documentation, value=probe())
