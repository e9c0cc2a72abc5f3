"""HealthBoard (breaker, cooldowns, sharing deltas) and LatencyTracker, on a fake clock."""

from __future__ import annotations

import pytest

from gateway.config import BreakerConfig
from gateway.routing.health import BreakerState, HealthBoard, LatencyAverage
from tests.routing.support import FakeClock

KEY = "ollama/deepseek-v4-flash"


def board(clock: FakeClock, **settings: float) -> HealthBoard:
    defaults: dict[str, float] = {"consecutive_failures": 3, "failure_ratio": 0.5,
                                  "window": 10.0, "min_requests": 4, "cooldown": 5.0}
    return HealthBoard(BreakerConfig(**{**defaults, **settings}), clock=clock)  # type: ignore[arg-type]


def open_breaker(b: HealthBoard) -> None:
    for _ in range(b.config.consecutive_failures):
        b.record_failure(KEY)
    assert b.state(KEY) is BreakerState.OPEN


async def test_opens_after_n_consecutive_failures_and_a_success_resets_the_count() -> None:
    clock = FakeClock()
    b = board(clock, min_requests=100)
    b.record_failure(KEY)
    b.record_failure(KEY)
    b.record_success(KEY)
    b.record_failure(KEY)
    b.record_failure(KEY)
    assert b.state(KEY) is BreakerState.CLOSED and b.usable(KEY)
    b.record_failure(KEY)
    assert b.state(KEY) is BreakerState.OPEN
    assert not b.usable(KEY)
    assert not await b.acquire(KEY)


def test_opens_on_failure_ratio_once_min_requests_is_reached() -> None:
    clock = FakeClock()
    b = board(clock, consecutive_failures=100, min_requests=6, failure_ratio=0.5)
    for _ in range(2):  # ok, fail, ok, fail: 50% but only 4 requests
        b.record_success(KEY)
        b.record_failure(KEY)
    b.record_success(KEY)
    assert b.state(KEY) is BreakerState.CLOSED
    b.record_failure(KEY)  # 3 of 6 failed
    assert b.state(KEY) is BreakerState.OPEN


def test_old_buckets_leave_the_window() -> None:
    """Failures older than `window` must not count towards the ratio."""
    clock = FakeClock()
    b = board(clock, consecutive_failures=100, min_requests=4, window=10.0)
    for _ in range(3):
        b.record_failure(KEY)
        b.record_success(KEY)
    clock.advance(11.0)
    b.record_success(KEY)
    b.record_success(KEY)
    b.record_success(KEY)
    b.record_failure(KEY)  # 1 of 4 in the window; 4 of 10 overall would also stay closed
    assert b.state(KEY) is BreakerState.CLOSED
    clock.advance(11.0)
    b.record_failure(KEY)
    b.record_success(KEY)
    b.record_failure(KEY)
    b.record_failure(KEY)  # 3 of 4 in the window
    assert b.state(KEY) is BreakerState.OPEN


def test_failures_spread_over_the_window_still_count() -> None:
    clock = FakeClock()
    b = board(clock, consecutive_failures=100, min_requests=6, window=10.0)
    for _ in range(3):
        b.record_success(KEY)
        assert b.state(KEY) is BreakerState.CLOSED
        b.record_failure(KEY)
        clock.advance(3.0)  # 6 s between the first and the last: inside the 10 s window
    assert b.state(KEY) is BreakerState.OPEN


async def test_a_late_success_while_open_does_not_close_the_breaker() -> None:
    """A request already in flight when the breaker opened is not the probe (regression:
    any success used to close an open breaker, so concurrency made it useless)."""
    clock = FakeClock()
    b = board(clock, cooldown=5.0)
    open_breaker(b)
    clock.advance(1.0)
    b.record_success(KEY)
    assert b.state(KEY) is BreakerState.OPEN
    assert not b.usable(KEY) and not await b.acquire(KEY)
    b.record_failure(KEY)  # a late failure does not extend the opening either
    clock.advance(4.1)
    assert await b.acquire(KEY)


async def test_sheds_while_open_then_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    b = board(clock, cooldown=5.0)
    open_breaker(b)
    clock.advance(4.9)
    assert not b.usable(KEY) and not await b.acquire(KEY)
    clock.advance(0.2)
    assert b.usable(KEY)
    assert await b.acquire(KEY)
    assert b.state(KEY) is BreakerState.HALF_OPEN
    assert not b.usable(KEY)
    assert not await b.acquire(KEY)  # the probe is taken


async def test_a_successful_probe_closes_the_breaker() -> None:
    clock = FakeClock()
    b = board(clock)
    open_breaker(b)
    clock.advance(5.1)
    assert await b.acquire(KEY)
    b.record_success(KEY)
    assert b.state(KEY) is BreakerState.CLOSED
    assert await b.acquire(KEY) and await b.acquire(KEY)
    b.record_failure(KEY)  # the count started again from zero
    assert b.state(KEY) is BreakerState.CLOSED


async def test_a_failed_probe_opens_the_breaker_for_another_cooldown() -> None:
    clock = FakeClock()
    b = board(clock)
    open_breaker(b)
    clock.advance(5.1)
    assert await b.acquire(KEY)
    b.record_failure(KEY)
    assert b.state(KEY) is BreakerState.OPEN
    clock.advance(4.9)
    assert not await b.acquire(KEY)
    clock.advance(0.2)
    assert await b.acquire(KEY)


async def test_a_probe_that_never_reports_is_replaced_after_a_cooldown() -> None:
    clock = FakeClock()
    b = board(clock)
    open_breaker(b)
    clock.advance(5.1)
    assert await b.acquire(KEY)
    clock.advance(5.1)
    assert await b.acquire(KEY)


async def test_retry_after_is_a_cooldown_even_with_a_closed_breaker() -> None:
    clock = FakeClock()
    b = board(clock)
    b.record_failure(KEY, retry_after=2.0)
    assert b.state(KEY) is BreakerState.CLOSED
    assert not b.usable(KEY) and not await b.acquire(KEY)
    assert b.in_cooldown(KEY) == pytest.approx(2.0)
    clock.advance(1.5)
    assert b.in_cooldown(KEY) == pytest.approx(0.5)
    clock.advance(0.6)
    assert b.usable(KEY) and await b.acquire(KEY)
    assert b.in_cooldown(KEY) == 0.0
    assert b.in_cooldown("never/seen") == 0.0


def test_a_shorter_retry_after_does_not_shorten_a_cooldown() -> None:
    clock = FakeClock()
    b = board(clock)
    b.record_failure(KEY, retry_after=10.0)
    b.record_failure(KEY, retry_after=1.0)
    assert b.in_cooldown(KEY) == pytest.approx(10.0)


async def test_trip_opens_and_blocks_for_the_given_time() -> None:
    clock = FakeClock()
    b = board(clock, cooldown=5.0)
    b.trip(KEY, 60.0)
    assert b.state(KEY) is BreakerState.OPEN
    clock.advance(30.0)  # well past the breaker's own cooldown
    assert not b.usable(KEY) and b.in_cooldown(KEY) == pytest.approx(30.0)
    clock.advance(30.1)
    assert await b.acquire(KEY)


def test_drain_deltas_returns_outcomes_since_the_last_drain() -> None:
    clock = FakeClock()
    b = board(clock, consecutive_failures=100, min_requests=100)
    b.record_failure(KEY)
    b.record_success(KEY)
    b.record_failure(KEY, retry_after=3.0)
    b.record_failure(KEY)
    b.trip("other/m", 20.0)
    deltas = b.drain_deltas()
    d = deltas[KEY]
    assert (d.ok, d.failed, d.trailing_failures, d.had_success) == (1, 3, 2, True)
    assert d.cooldown_until == pytest.approx(clock.now + 3.0)
    assert deltas["other/m"].trip_until == pytest.approx(clock.now + 20.0)
    assert deltas["other/m"].cooldown_until == deltas["other/m"].trip_until
    assert b.drain_deltas() == {}
    b.record_failure(KEY)
    again = b.drain_deltas()[KEY]
    assert (again.ok, again.failed, again.trailing_failures, again.had_success) == (0, 1, 1, False)


async def test_adopt_takes_the_clusters_open_state_and_cooldown() -> None:
    clock = FakeClock()
    b = board(clock)
    b.adopt(KEY, "open", clock.now + 5.0, clock.now + 2.0)
    assert b.state(KEY) is BreakerState.OPEN
    assert not b.usable(KEY)
    assert b.in_cooldown(KEY) == pytest.approx(2.0)
    # an older opening from the cluster does not shorten ours
    b.adopt(KEY, "open", clock.now + 1.0, 0.0)
    clock.advance(4.0)
    assert not b.usable(KEY)
    clock.advance(1.1)
    assert await b.acquire(KEY)


async def test_adopt_closed_closes_a_local_breaker() -> None:
    """Another process's probe succeeded: this one should send traffic again."""
    clock = FakeClock()
    b = board(clock)
    open_breaker(b)
    b.adopt(KEY, "closed", 0.0, 0.0)
    assert b.state(KEY) is BreakerState.CLOSED and await b.acquire(KEY)
    b.record_failure(KEY)
    b.record_failure(KEY)
    assert b.state(KEY) is BreakerState.CLOSED  # consecutive count was reset by the close


def test_adopt_open_does_not_interrupt_a_local_probe_of_the_same_opening() -> None:
    clock = FakeClock()
    b = board(clock)
    open_breaker(b)
    clock.advance(5.1)
    b.adopt(KEY, "open", clock.now - 0.1, 0.0)  # the cluster's opening that already ended
    assert b.state(KEY) is BreakerState.OPEN and b.usable(KEY)


def test_latency_tracker_is_an_exponential_moving_average() -> None:
    t = LatencyAverage(alpha=0.5)
    assert t.get("k") is None
    t.observe("k", 1.0)
    assert t.get("k") == pytest.approx(1.0)  # first sample taken as is
    t.observe("k", 3.0)
    assert t.get("k") == pytest.approx(2.0)
    t.observe("k", 0.0)
    assert t.get("k") == pytest.approx(1.0)
    assert t.get("other") is None
    default = LatencyAverage()
    default.observe("k", 1.0)
    default.observe("k", 2.0)
    assert default.get("k") == pytest.approx(1.2)


async def test_closed_is_the_fast_path_only_for_a_closed_breaker_without_cooldown() -> None:
    clock = FakeClock()
    b = board(clock, cooldown=5.0)
    assert b.closed(KEY)
    b.record_failure(KEY, retry_after=1.0)
    assert not b.closed(KEY)
    clock.advance(1.1)
    assert b.closed(KEY)
    open_breaker(b)
    assert not b.closed(KEY)
    clock.advance(5.1)
    assert await b.acquire(KEY)
    assert not b.closed(KEY)  # half-open: the probe must go through acquire
