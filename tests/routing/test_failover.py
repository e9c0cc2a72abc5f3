"""Failover.run with scripted attempts, a fake clock and a sleep that only records."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.config import BreakerConfig, RoutingConfig
from gateway.errors import UpstreamError
from gateway.routing.failover import AllTargetsFailed, Failover
from gateway.routing.health import BreakerState, HealthBoard, LatencyTracker
from gateway.routing.policy import Target
from tests.routing.support import ALL_KEYS, FakeClock, config, table

MODEL = "deepseek-v4-flash"
Outcome = int | UpstreamError  # 200 answers; another int fails with that upstream status


class Script:
    """Per provider, the outcomes of its successive attempts (the last one repeats)."""

    def __init__(self, clock: FakeClock, outcomes: dict[str, Sequence[Outcome]],
                 duration: float = 0.0) -> None:
        self.clock = clock
        self.outcomes = {name: list(seq) for name, seq in outcomes.items()}
        self.duration = duration
        self.calls: list[str] = []
        self.seconds_left: list[float] = []

    async def __call__(self, target: Target, seconds_left: float) -> str:
        name = target.provider.name
        self.calls.append(name)
        self.seconds_left.append(seconds_left)
        self.clock.advance(self.duration)
        queue = self.outcomes.get(name, [200])
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, UpstreamError):
            raise outcome
        if outcome != 200:
            raise UpstreamError(f"{name} failed", provider=name, upstream_status=outcome)
        return f"answer from {name}"


class Rig:
    """A Failover over the default three providers, with time under the test's control."""

    def __init__(self, tmp_path: Path, routing: RoutingConfig | None = None,
                 env: dict[str, str] | None = None, seed: int = 0) -> None:
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.routing = routing or RoutingConfig(
            breaker=BreakerConfig(consecutive_failures=100, min_requests=1000))
        self.routes = table(config(tmp_path, env=env))
        self.board = HealthBoard(self.routing.breaker, clock=self.clock)
        self.failover = Failover(self.routes, self.board, LatencyTracker(), self.routing,
                                 rng=random.Random(seed), sleep=self._sleep, clock=self.clock)

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def key(self, provider: str) -> str:
        [target] = [t for t in self.routes.plan(MODEL) if t.provider.name == provider]
        return target.key

    def open_breaker(self, provider: str) -> None:
        for _ in range(self.routing.breaker.consecutive_failures):
            self.board.record_failure(self.key(provider))
        assert self.board.state(self.key(provider)) is BreakerState.OPEN

    async def run(self, script: Script, pinned: str | None = None) -> str:
        served = await self.failover.run(MODEL, pinned, script)
        assert served.result == f"answer from {served.target.provider.name}"
        return served.attempts.header()


async def test_targets_are_tried_in_plan_order_until_one_answers(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    script = Script(rig.clock, {"deepseek": [503], "openrouter": [502]})
    assert await rig.run(script) == "deepseek:503,openrouter:502,ollama:200"
    assert script.calls == ["deepseek", "openrouter", "ollama"]
    assert rig.sleeps == []  # no backoff inside the first round


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_the_clients_own_errors_are_not_retried_elsewhere(
    tmp_path: Path, status: int
) -> None:
    rig = Rig(tmp_path)
    script = Script(rig.clock, {"deepseek": [status]})
    with pytest.raises(AllTargetsFailed) as failed:
        await rig.run(script)
    assert failed.value.error.upstream_status == status
    assert failed.value.error.status == status
    assert failed.value.attempts.header() == f"deepseek:{status}"
    assert script.calls == ["deepseek"] and rig.sleeps == []
    assert rig.board.drain_deltas()[rig.key("deepseek")].failed == 0  # not the upstream's fault


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_trips_every_target_of_that_provider_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    rig = Rig(tmp_path)
    script = Script(rig.clock, {"deepseek": [status]})
    with caplog.at_level(logging.ERROR, logger="gateway.failover"):
        assert await rig.run(script) == f"deepseek:{status},openrouter:200"
    [record] = [r for r in caplog.records if r.name == "gateway.failover"]
    assert record.levelno == logging.ERROR
    assert "deepseek" in record.getMessage() and str(status) in record.getMessage()
    for secret in ALL_KEYS.values():
        assert secret not in caplog.text
    deepseek_keys = [t.key for t in rig.routes.all_targets() if t.provider.name == "deepseek"]
    assert len(deepseek_keys) == 2  # both models
    cooldown = rig.routing.breaker.auth_failure_cooldown
    for key in deepseek_keys:
        assert rig.board.state(key) is BreakerState.OPEN
        assert rig.board.in_cooldown(key) == pytest.approx(cooldown)
    assert rig.board.state(rig.key("openrouter")) is BreakerState.CLOSED
    # the next request does not even try deepseek
    again = Script(rig.clock, {})
    assert await rig.run(again) == "openrouter:200"


async def test_backoff_between_rounds_is_full_jitter_under_a_growing_cap(tmp_path: Path) -> None:
    base, cap = 0.1, 0.5
    routing = RoutingConfig(max_attempts=6, backoff_base=base, backoff_max=cap,
                            breaker=BreakerConfig(consecutive_failures=100, min_requests=1000))
    per_round: list[list[float]] = [[] for _ in range(5)]
    for seed in range(40):
        rig = Rig(tmp_path, routing, env={"OLLAMA_API_KEY": "k"}, seed=seed)
        script = Script(rig.clock, {"ollama": [503]})
        with pytest.raises(AllTargetsFailed):
            await rig.run(script)
        assert len(script.calls) == 6
        assert len(rig.sleeps) == 5  # between rounds only, none after the last attempt
        for i, delay in enumerate(rig.sleeps):
            per_round[i].append(delay)
    for i, delays in enumerate(per_round):
        ceiling = min(cap, base * 2 ** (i + 1))
        assert all(0 <= d <= ceiling for d in delays), (i, ceiling, delays)
        assert len(set(delays)) > 30  # jittered, not a fixed schedule
        assert max(delays) > 0.8 * ceiling  # and the cap grows as documented
    assert max(per_round[0]) < 0.2 < max(per_round[1])


async def test_max_attempts_caps_the_number_of_attempts(tmp_path: Path) -> None:
    routing = RoutingConfig(max_attempts=2)
    rig = Rig(tmp_path, routing)
    script = Script(rig.clock, {"deepseek": [503], "openrouter": [500], "ollama": [503]})
    with pytest.raises(AllTargetsFailed) as failed:
        await rig.run(script)
    assert script.calls == ["deepseek", "openrouter"]
    assert failed.value.attempts.header() == "deepseek:503,openrouter:500"
    assert failed.value.error.upstream_status == 500  # the last error is the one reported


async def test_the_deadline_stops_retries_and_bounds_each_attempt(tmp_path: Path) -> None:
    routing = RoutingConfig(max_attempts=100, deadline=1.0, backoff_base=0.0,
                            breaker=BreakerConfig(consecutive_failures=100, min_requests=1000))
    rig = Rig(tmp_path, routing, env={"OLLAMA_API_KEY": "k"})
    script = Script(rig.clock, {"ollama": [503]}, duration=0.3)
    with pytest.raises(AllTargetsFailed):
        await rig.run(script)
    assert script.seconds_left == pytest.approx([1.0, 0.7, 0.4, 0.1])


async def test_panic_routing_when_every_breaker_is_open(tmp_path: Path) -> None:
    """A false alarm on every breaker must not become an outage."""
    rig = Rig(tmp_path, RoutingConfig(breaker=BreakerConfig(consecutive_failures=2)))
    for name in ("deepseek", "openrouter", "ollama"):
        rig.open_breaker(name)
        assert not rig.board.usable(rig.key(name))
    script = Script(rig.clock, {"deepseek": [503]})
    assert await rig.run(script) == "deepseek:503,openrouter:200"
    assert rig.sleeps == []


async def test_open_breakers_are_skipped(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RoutingConfig(breaker=BreakerConfig(consecutive_failures=2)))
    rig.open_breaker("deepseek")
    script = Script(rig.clock, {})
    assert await rig.run(script) == "openrouter:200"
    assert script.calls == ["openrouter"]


async def test_a_probe_held_elsewhere_is_skipped(tmp_path: Path) -> None:
    """With a shared store, another process may own the half-open probe."""
    rig = Rig(tmp_path, RoutingConfig(breaker=BreakerConfig(consecutive_failures=2,
                                                            cooldown=5.0)))
    rig.open_breaker("deepseek")
    rig.clock.advance(5.1)
    claims: list[str] = []

    async def taken(key: str, ttl: float) -> bool:
        claims.append(key)
        return False

    rig.board.probe_gate = taken
    script = Script(rig.clock, {})
    assert await rig.run(script) == "openrouter:200"
    assert claims == [rig.key("deepseek")]


async def test_retry_after_cools_that_target_for_later_requests(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    first = Script(rig.clock, {"deepseek": [429]})
    first.outcomes["deepseek"] = [UpstreamError("slow down", provider="deepseek",
                                                upstream_status=429, retry_after=10)]
    assert await rig.run(first) == "deepseek:429,openrouter:200"
    second = Script(rig.clock, {})
    assert await rig.run(second) == "openrouter:200"
    rig.clock.advance(10.1)
    third = Script(rig.clock, {})
    assert await rig.run(third) == "deepseek:200"


async def test_a_retry_after_longer_than_we_may_wait_ends_with_that_error(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, RoutingConfig(max_attempts=3, max_cooldown_wait=5.0),
              env={"OLLAMA_API_KEY": "k"})
    limited = UpstreamError("usage limit", provider="ollama", upstream_status=429,
                            retry_after=30)
    script = Script(rig.clock, {"ollama": [limited]})
    with pytest.raises(AllTargetsFailed) as failed:
        await rig.run(script)
    assert failed.value.error is limited
    assert failed.value.error.retry_after == 30
    assert failed.value.error.headers["retry-after"] == "30"
    assert script.calls == ["ollama"]  # not retried although attempts were left
    assert all(s < 5.0 for s in rig.sleeps)  # and not waited for


async def test_a_short_retry_after_is_waited_for_when_allowed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RoutingConfig(max_attempts=3, max_cooldown_wait=5.0),
              env={"OLLAMA_API_KEY": "k"})
    busy = UpstreamError("busy", provider="ollama", upstream_status=503, retry_after=2)
    script = Script(rig.clock, {"ollama": [busy, 200]})
    assert await rig.run(script) == "ollama:503,ollama:200"
    assert sum(rig.sleeps) == pytest.approx(2.0, abs=0.2)
    assert max(rig.sleeps) >= 1.8  # the cooldown itself, not only a backoff


async def test_every_target_cooling_down_fails_fast_with_a_retry_after(tmp_path: Path) -> None:
    rig = Rig(tmp_path, env={"OLLAMA_API_KEY": "k", "DEEPSEEK_API_KEY": "k"})
    for name in ("deepseek", "ollama"):
        rig.board.record_failure(rig.key(name), retry_after=20)
    script = Script(rig.clock, {})
    with pytest.raises(AllTargetsFailed) as failed:
        await rig.run(script)
    assert script.calls == []
    assert failed.value.error.status == 503
    assert failed.value.error.retry_after == pytest.approx(20)  # when to come back


async def test_a_stream_is_settled_once_when_it_ends(tmp_path: Path) -> None:
    """A streamed attempt that returned (its first token came) is not yet a success: a stream
    that breaks later counts as one failure, a complete one as one success."""
    rig = Rig(tmp_path)
    key = rig.key("deepseek")
    broken = await rig.failover.run(MODEL, None, Script(rig.clock, {}), streamed=True)
    assert rig.board.drain_deltas().get(key) is None  # nothing recorded at the first token
    error = UpstreamError("deepseek cut the answer short", provider="deepseek",
                          upstream_status=None)
    broken.settle(error)
    broken.settle(None)  # a second settlement (e.g. the relay's finally) changes nothing
    delta = rig.board.drain_deltas()[key]
    assert (delta.ok, delta.failed) == (0, 1)
    complete = await rig.failover.run(MODEL, None, Script(rig.clock, {}), streamed=True)
    complete.settle(None)
    delta = rig.board.drain_deltas()[key]
    assert (delta.ok, delta.failed) == (1, 0)


async def test_latency_is_kept_apart_for_streams_and_whole_answers(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    key = rig.key("deepseek")
    await rig.failover.run(MODEL, None, Script(rig.clock, {}, duration=0.2), streamed=True)
    await rig.failover.run(MODEL, None, Script(rig.clock, {}, duration=3.0))
    latency = rig.failover.latency
    assert latency.streamed.get(key) == pytest.approx(0.2)  # time to the first token
    assert latency.whole.get(key) == pytest.approx(3.0)  # time to the whole answer


# ---- quota-aware cooldowns (issue 12) ------------------------------------------------------


@pytest.mark.parametrize(("quota", "seconds"), [("session", 3600.0), ("weekly", 6 * 3600.0),
                                                 ("balance", 3600.0)])
async def test_an_account_out_of_quota_is_left_alone_then_probed_once(
    tmp_path: Path, quota: str, seconds: float
) -> None:
    rig = Rig(tmp_path, env={"OLLAMA_API_KEY": "k", "DEEPSEEK_API_KEY": "k"})
    first, other = [t.provider.name for t in rig.routes.plan(MODEL)]
    out = UpstreamError("out of quota", provider=first, upstream_status=429, quota=quota)
    script = Script(rig.clock, {first: [out, 200]})
    assert await rig.run(script) == f"{first}:429,{other}:200"
    rig.clock.advance(seconds - 1)
    for _ in range(20):
        assert await rig.run(script) == f"{other}:200"
    assert script.calls.count(first) == 1  # zero attempts while it is out
    assert rig.board.quota_cooldowns()[first][0] == quota
    rig.clock.advance(1.5)
    assert await rig.run(script) == f"{first}:200"  # the one probe, and it is back
    assert rig.board.quota_cooldowns() == {}
