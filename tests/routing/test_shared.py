"""SharedHealth against the real local Redis: two boards, one cluster breaker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from gateway.config import BreakerConfig
from gateway.routing.health import BreakerState, HealthBoard
from gateway.routing.shared import SharedHealth
from tests.routing.support import FakeClock

REDIS_URL = "redis://127.0.0.1:6379/0"
BREAKER = BreakerConfig(consecutive_failures=3, min_requests=100, cooldown=5.0)


@pytest.fixture
async def key() -> AsyncIterator[str]:
    """A target key no other test or run uses; its Redis keys are deleted afterwards."""
    client = redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"needs a Redis at {REDIS_URL}: {type(exc).__name__}")
    name = f"test-{uuid.uuid4().hex[:12]}/deepseek-v4-flash"
    yield name
    stale = [k async for k in client.scan_iter(match=f"switchyard:breaker:{name}*")]
    if stale:
        await client.delete(*stale)
    await client.aclose()


@pytest.fixture
async def pair(key: str) -> AsyncIterator[tuple[HealthBoard, SharedHealth, HealthBoard,
                                                SharedHealth, FakeClock]]:
    """Two processes' boards on one Redis, on one (fake, wall-like) clock."""
    clock = FakeClock(1_700_000_000.0)
    board_a, board_b = HealthBoard(BREAKER, clock=clock), HealthBoard(BREAKER, clock=clock)
    shared_a = SharedHealth(board_a, REDIS_URL, [key])
    shared_b = SharedHealth(board_b, REDIS_URL, [key])
    yield board_a, shared_a, board_b, shared_b, clock
    for shared in (shared_a, shared_b):
        await shared.close()


async def test_failures_on_one_board_open_the_breaker_on_the_other(
    key: str, pair: tuple[HealthBoard, SharedHealth, HealthBoard, SharedHealth, FakeClock]
) -> None:
    board_a, shared_a, board_b, shared_b, _ = pair
    for _ in range(3):
        board_a.record_failure(key)
    assert board_a.state(key) is BreakerState.OPEN
    await shared_b.sync()
    assert board_b.state(key) is BreakerState.CLOSED  # nothing pushed yet
    await shared_a.sync()
    await shared_b.sync()
    assert shared_a.connected and shared_b.connected
    assert board_b.state(key) is BreakerState.OPEN
    assert not board_b.usable(key) and not await board_b.acquire(key)


async def test_failures_from_both_boards_add_up(
    key: str, pair: tuple[HealthBoard, SharedHealth, HealthBoard, SharedHealth, FakeClock]
) -> None:
    """Neither process alone reaches the threshold; the cluster does."""
    board_a, shared_a, board_b, shared_b, _ = pair
    board_a.record_failure(key)
    board_a.record_failure(key)
    board_b.record_failure(key)
    assert board_a.state(key) is BreakerState.CLOSED
    assert board_b.state(key) is BreakerState.CLOSED
    await shared_a.sync()
    await shared_b.sync()
    await shared_a.sync()
    assert board_a.state(key) is BreakerState.OPEN
    assert board_b.state(key) is BreakerState.OPEN


async def test_only_one_board_gets_the_half_open_probe_and_its_success_closes_both(
    key: str, pair: tuple[HealthBoard, SharedHealth, HealthBoard, SharedHealth, FakeClock]
) -> None:
    board_a, shared_a, board_b, shared_b, clock = pair
    for _ in range(3):
        board_a.record_failure(key)
    await shared_a.sync()
    await shared_b.sync()
    clock.advance(BREAKER.cooldown + 0.1)
    claims = [await board_a.acquire(key), await board_b.acquire(key)]
    assert claims == [True, False]
    assert not await board_b.acquire(key)
    board_a.record_success(key)
    assert board_a.state(key) is BreakerState.CLOSED
    await shared_a.sync()
    await shared_b.sync()
    assert board_b.state(key) is BreakerState.CLOSED
    assert await board_b.acquire(key)


async def test_a_retry_after_cooldown_is_shared(
    key: str, pair: tuple[HealthBoard, SharedHealth, HealthBoard, SharedHealth, FakeClock]
) -> None:
    board_a, shared_a, board_b, shared_b, clock = pair
    board_a.record_failure(key, retry_after=2.0)
    await shared_a.sync()
    await shared_b.sync()
    assert board_b.state(key) is BreakerState.CLOSED
    assert board_b.in_cooldown(key) == pytest.approx(2.0)
    assert not board_b.usable(key)
    clock.advance(2.1)
    assert board_b.usable(key)


async def test_without_redis_sync_never_raises_and_the_board_works_in_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    board = HealthBoard(BREAKER, clock=clock)
    key = "ollama/deepseek-v4-flash"
    shared = SharedHealth(board, "redis://127.0.0.1:1/0", [key])
    assert shared.connected is None
    await shared.sync()
    assert shared.connected is False
    assert any("Redis unavailable" in r.getMessage() for r in caplog.records)
    for _ in range(3):
        board.record_failure(key)
    await shared.sync()  # still no exception, and the local state is kept
    assert board.state(key) is BreakerState.OPEN
    clock.advance(BREAKER.cooldown + 0.1)
    assert await board.acquire(key)  # the probe gate allows when Redis is down
    board.record_success(key)
    assert board.state(key) is BreakerState.CLOSED
    await shared.close()
    assert shared.connected is False


async def test_outcomes_a_failed_sync_could_not_push_are_pushed_by_the_next(
    key: str, pair: tuple[HealthBoard, SharedHealth, HealthBoard, SharedHealth, FakeClock],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Redis hiccup (a timeout on a loaded box) must not lose the failures that opened a
    breaker: the other replica would never hear of them."""
    board_a, shared_a, board_b, shared_b, _ = pair
    merge = shared_a._merge
    calls = 0

    async def flaky_merge(**kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise redis.TimeoutError("Timeout reading from socket")
        return await merge(**kwargs)

    monkeypatch.setattr(shared_a, "_merge", flaky_merge)
    for _ in range(3):
        board_a.record_failure(key)
    await shared_a.sync()  # the push times out
    assert shared_a.connected is False
    await shared_a._link.wait_up()  # Redis answers pings: the link is back at once
    board_a.record_failure(key)  # outcomes meanwhile fold into the kept ones
    await shared_a.sync()
    await shared_b.sync()
    assert calls == 2
    assert board_b.state(key) is BreakerState.OPEN


async def test_a_local_trip_stays_on_its_own_board(
    key: str, pair: tuple[HealthBoard, SharedHealth, HealthBoard, SharedHealth, FakeClock]
) -> None:
    """An upstream 401/403 is about one replica's key: the other replica keeps the target,
    and the cluster's closed breaker does not reopen it here either."""
    board_a, shared_a, board_b, shared_b, _ = pair
    board_a.trip(key, 120, share=False)
    await shared_a.sync()
    await shared_b.sync()
    assert board_b.usable(key) and await board_b.acquire(key)
    assert not board_a.usable(key) and not await board_a.acquire(key)
    board_b.trip(key, 120)  # a shared trip (out of quota) does reach the other board
    await shared_b.sync()
    await shared_a.sync()
    assert board_a.state(key) is BreakerState.OPEN
