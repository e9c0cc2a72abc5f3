"""An account out of quota is out for every replica: the trip goes through Redis like any other
(issue 12), so a second process sends it nothing either, without its own failed attempt."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from gateway.config import BreakerConfig
from gateway.routing.health import HealthBoard
from gateway.routing.shared import SharedHealth
from tests.routing.support import FakeClock

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def key() -> AsyncIterator[str]:
    client = redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"needs a Redis at {REDIS_URL}: {type(exc).__name__}")
    name = f"test-{uuid.uuid4().hex[:12]}/deepseek-v4.1-flash"
    yield name
    stale = [k async for k in client.scan_iter(match=f"switchyard:breaker:{name}*")]
    if stale:
        await client.delete(*stale)
    await client.aclose()


async def test_a_quota_trip_reaches_the_other_replica(key: str) -> None:
    clock = FakeClock(1_700_000_000.0)
    config = BreakerConfig()
    board_a, board_b = HealthBoard(config, clock=clock), HealthBoard(config, clock=clock)
    shared_a = SharedHealth(board_a, REDIS_URL, [key])
    shared_b = SharedHealth(board_b, REDIS_URL, [key])
    try:
        seconds = config.quota_cooldown["session"]
        board_a.trip(key, seconds)  # what failover does on a usage-limit 429
        await shared_a.sync()
        await shared_b.sync()
        assert not board_b.usable(key)
        assert board_b.in_cooldown(key) == pytest.approx(seconds)
        clock.advance(seconds - 1)
        await shared_b.sync()
        assert not board_b.usable(key)
        clock.advance(2)
        assert board_b.usable(key)  # then one probe, claimed cluster-wide
        assert await board_b.acquire(key)
        assert not await board_a.acquire(key)
    finally:
        await shared_a.close()
        await shared_b.close()
