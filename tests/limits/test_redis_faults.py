"""Redis faults on the request path, against a redis-server of the test's own: killed, and
frozen (SIGSTOP). One warning when it goes, one info line when it returns, no request waits on
a Redis known to be down, and local counting goes on from the counts last seen there, each
process taking its share of what was left."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as redis

from gateway.keys.principal import Budget
from gateway.limits.budget import BudgetTracker
from gateway.limits.ratelimit import Limit, RateLimiter
from gateway.limits.redislink import RedisLink
from gateway.tasks import stop
from tests.frozen import Freezable
from tests.limits.test_ratelimit import Clock


class OwnRedis(Freezable):
    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"needs redis-server: {exc}")
    try:
        yield server
    finally:
        server.stop()


OpenLink = Callable[..., RedisLink]


@pytest.fixture
async def open_link(own_redis: OwnRedis) -> AsyncIterator[OpenLink]:
    """`open_link(**options)`: a RedisLink to the test's Redis, closed after the test whatever
    happened in it. A link left open leaves its tasks to the loop's teardown, whose one cancel
    may be lost (gateway/tasks.py): a failing assertion then hung the run, not failed it."""
    async with contextlib.AsyncExitStack() as closing:

        def link(**options: Any) -> RedisLink:
            made = RedisLink(own_redis.url, **options)
            closing.push_async_callback(made.close)
            return made

        yield link
        if own_redis.proc is not None:
            own_redis.thaw()  # left frozen by a failed assertion: the links close at once


async def wait_until_up(link: RedisLink, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.02) + 1):
        if link.up:
            return
        assert time.monotonic() < deadline, "the probe never saw Redis return"
        await asyncio.sleep(0.02)
    raise AssertionError("the probe never saw Redis return")


async def wait_for_state(ready: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Poll until `ready()`: on a loaded box the link's tasks run late, not never."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.01)


def subject() -> str:
    return f"key:test-{uuid.uuid4().hex[:10]}"


async def test_a_hung_redis_costs_one_timeout_then_nothing(
    own_redis: OwnRedis, open_link: OpenLink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.redis")
    # A deadline a loaded box meets, a socket timeout far from it.
    link = open_link(timeout=1.0, probe_interval=0.1, request_timeout=0.1)
    link.start()
    limiter = RateLimiter(link)
    limit = Limit(subject(), rpm=1000)
    assert (await limiter.admit([limit])).allowed
    # A stall before the freeze may have missed that deadline: its check must end first, or
    # no request finds Redis hung (slow == 0 under load).
    await wait_for_state(lambda: link.usable, "Redis usable before the freeze")
    own_redis.freeze()
    slow = 0
    for _ in range(50):
        began = time.monotonic()
        assert (await limiter.admit([limit])).allowed
        elapsed = time.monotonic() - began
        assert elapsed < link.request_timeout + 0.1  # never the 1 s socket timeout
        slow += elapsed >= link.request_timeout * 0.9  # waited out its deadline
    assert slow == 1  # only the request that found it hung waited, its deadline at most
    # The check (one ping, the full timeout) finds it down.
    await wait_for_state(lambda: not link.up, "the check marks Redis down")
    own_redis.thaw()
    await wait_until_up(link)
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.redis"]
    assert len([m for m in messages if "unavailable" in m]) == 1
    assert len([m for m in messages if "back" in m]) == 1


async def test_local_counting_continues_from_the_last_counts_and_shares_what_is_left(
    own_redis: OwnRedis, open_link: OpenLink
) -> None:
    """rpm 120; 40 used through Redis, then it dies: two replicas may admit 40 each more,
    so the cluster stays at the limit instead of 120 more per process."""
    clock = Clock()
    links = [open_link(timeout=0.2, replicas=2) for _ in range(2)]
    a, b = RateLimiter(links[0], clock=clock), RateLimiter(links[1], clock=clock)
    limit = Limit(subject(), rpm=120)
    for i in range(40):
        assert (await (a if i % 2 else b).admit([limit])).allowed
    own_redis.stop()
    admitted = 0
    for _ in range(200):
        admitted += (await a.admit([limit])).allowed
        admitted += (await b.admit([limit])).allowed
    assert 40 + admitted <= 120 * 1.05
    assert 40 + admitted >= 110
    clock.now += 60  # a new minute: each gets its share of the whole limit
    fresh = sum([(await a.admit([limit])).allowed for _ in range(200)])
    assert fresh == 60


async def test_replicas_are_counted_through_heartbeats(open_link: OpenLink) -> None:
    links = [open_link(heartbeat=0.05) for _ in range(3)]
    for link in links:
        link.start()
    await asyncio.sleep(0.3)
    assert [link.replicas for link in links] == [3, 3, 3]


async def test_a_heartbeat_does_not_walk_the_keyspace(
    own_redis: OwnRedis, open_link: OpenLink
) -> None:
    """Each beat was a SCAN over every key, a round trip per 500, in every process every
    second; a Redis holding rate-limit counters has many. Now it is one script."""
    client = redis.from_url(own_redis.url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for i in range(20_000):
                pipe.set(f"switchyard:rl:key:k{i}:req:1", 1)
            await pipe.execute()
        await client.config_resetstat()
        links = [open_link(heartbeat=0.05) for _ in range(2)]
        for link in links:
            link.start()
        await asyncio.sleep(0.4)
        assert [link.replicas for link in links] == [2, 2]
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    assert not [name for name in stats if "scan" in name]
    assert stats["cmdstat_evalsha"]["calls"] >= 8  # both beat every 50 ms


async def test_a_replica_that_stopped_beating_drops_out_of_the_count(
    open_link: OpenLink,
) -> None:
    """Killed, it never takes its beat back: the others stop counting it once it runs out
    (a heartbeat's life, 1 s here), and one that closes leaves at once."""
    links = [open_link(heartbeat=0.05) for _ in range(3)]
    for link in links:
        link.start()
    await asyncio.sleep(0.3)
    assert [link.replicas for link in links] == [3, 3, 3]
    await stop(links[2]._task)  # as if killed: no goodbye
    await links[1].close()
    await asyncio.sleep(0.3)
    assert links[0].replicas == 2  # the closed one left; the killed one still counts
    await asyncio.sleep(1.0)
    assert links[0].replicas == 1


async def test_budget_spend_goes_on_from_redis_and_catches_up_when_it_returns(
    own_redis: OwnRedis, open_link: OpenLink
) -> None:
    async def nothing_recorded(subject: str, since: datetime) -> float:
        return 0.0

    link = open_link(timeout=0.2, probe_interval=0.05)
    link.start()
    tracker = BudgetTracker(link, nothing_recorded, clock=lambda: time.time())
    budget = Budget(subject(), usd=1.0, period="day")
    await tracker.charge([budget], 0.6)
    own_redis.freeze()
    await tracker.charge([budget], 0.3)  # finds it down
    began = time.monotonic()
    assert await tracker.check([budget]) is None  # 0.9 spent: room left
    await tracker.charge([budget], 0.2)
    exhausted = await tracker.check([budget])
    assert exhausted is not None and exhausted.spent == pytest.approx(1.1)
    assert time.monotonic() - began < 0.05  # nothing waited on the frozen Redis
    own_redis.thaw()
    await wait_until_up(link)
    await tracker.charge([budget], 0.1)  # carries what was charged meanwhile
    now = datetime.now(UTC)
    raw = await link.client.get(f"switchyard:spend:{budget.subject}:{now:%Y-%m-%d}")
    assert float(raw) == pytest.approx(1.2)


async def test_counts_made_while_redis_was_away_go_back_into_it(
    own_redis: OwnRedis, open_link: OpenLink
) -> None:
    """Redis dies and comes back empty (no persistence): the minute does not start over. Each
    process adds what it admitted meanwhile on top of the count it last saw there (and, not
    knowing whether the other is back yet, counts the other's share too: the count errs high
    by at most that, never low)."""
    clock = Clock()
    links = [open_link(timeout=0.2, probe_interval=0.05, replicas=2) for _ in range(2)]
    a, b = RateLimiter(links[0], clock=clock), RateLimiter(links[1], clock=clock)
    limit = Limit(subject(), rpm=100)
    for i in range(40):
        assert (await (a if i % 2 else b).admit([limit])).allowed
    own_redis.stop()
    away = [sum([(await limiter.admit([limit])).allowed for _ in range(10)])
            for limiter in (a, b)]
    assert away == [10, 10]
    own_redis.start()  # empty
    for link in links:
        await wait_until_up(link)
    assert (await a.admit([limit])).allowed
    assert (await b.admit([limit])).allowed
    window = int(clock.now // 60)
    counted = int(await links[0].client.get(f"switchyard:rl:{limit.subject}:req:{window}") or 0)
    assert 40 + 20 + 2 <= counted <= 40 + 20 + 2 + 10
    admitted = sum([(await (a if i % 2 else b).admit([limit])).allowed for i in range(100)])
    assert 100 - 10 <= 62 + admitted <= 100  # the rest of the minute's limit, no more


async def test_a_replica_back_first_does_not_hand_out_what_the_others_used_meanwhile(
    own_redis: OwnRedis, open_link: OpenLink
) -> None:
    """Both replicas use their share (60 of rpm 120) while Redis is away; Redis returns empty
    and one replica is back before the other has put its count back: it must not admit the
    other's share again (180 in a minute, seen under load in tests/e2e/test_redis_faults.py)."""
    clock = Clock()
    links = [open_link(timeout=0.2, probe_interval=0.05, replicas=2) for _ in range(2)]
    a, b = RateLimiter(links[0], clock=clock), RateLimiter(links[1], clock=clock)
    limit = Limit(subject(), rpm=120)
    own_redis.stop()
    away = [sum([(await limiter.admit([limit])).allowed for _ in range(100)])
            for limiter in (a, b)]
    assert away == [60, 60]
    own_redis.start()  # empty
    for link in links:
        await wait_until_up(link)
    from_b = sum([(await b.admit([limit])).allowed for _ in range(100)])  # a not back yet
    from_a = sum([(await a.admit([limit])).allowed for _ in range(100)])
    assert sum(away) + from_b + from_a <= 120


async def test_a_limit_spent_before_redis_died_stays_spent_when_it_returns_empty(
    own_redis: OwnRedis, open_link: OpenLink
) -> None:
    """Nothing admitted while it was away (the limit was reached), yet the counts last seen
    go back: a Redis restarted empty does not hand out the minute's limit again."""
    clock = Clock()
    link = open_link(timeout=0.2, probe_interval=0.05)
    limiter = RateLimiter(link, clock=clock)
    limit = Limit(subject(), rpm=10)
    assert sum([(await limiter.admit([limit])).allowed for _ in range(15)]) == 10
    own_redis.stop()
    assert not (await limiter.admit([limit])).allowed
    own_redis.start()
    await wait_until_up(link)
    assert sum([(await limiter.admit([limit])).allowed for _ in range(15)]) == 0


async def test_a_replica_back_first_keeps_counting_the_others_until_they_could_beat(
    own_redis: OwnRedis, open_link: OpenLink
) -> None:
    """Redis restarts empty: the first heartbeat after it sees only its own key. Counting 1
    then made that replica restore and share as if alone (170 of rpm 120 in a minute, in
    tests/e2e/test_redis_faults.py). The count holds for a beat's life."""
    links = [open_link(heartbeat=0.05, probe_interval=0.05) for _ in range(2)]
    for link in links:
        link.start()
    for _ in range(200):
        if [link.replicas for link in links] == [2, 2]:
            break
        await asyncio.sleep(0.01)
    assert [link.replicas for link in links] == [2, 2]
    own_redis.stop()
    await links[1].close()  # never beats again
    for _ in range(200):
        if not links[0].up:
            break
        await asyncio.sleep(0.01)
    assert not links[0].up
    own_redis.start()  # empty
    await wait_until_up(links[0])
    await asyncio.sleep(0.3)  # several heartbeats, each seeing one key
    assert links[0].replicas == 2
    await asyncio.sleep(1.0)  # a beat's life (1 s) since it came back: the count is whole
    assert links[0].replicas == 1


async def test_a_refusal_is_a_count_seen(own_redis: OwnRedis, open_link: OpenLink) -> None:
    """a last admitted at 2 of rpm 10, b used the rest, Redis refused a and died: a goes on
    from the 10 it was refused at, not from 2 (it admitted 4 more, and both replicas did so,
    156 of rpm 120 in a minute in tests/e2e/test_redis_faults.py)."""
    clock = Clock()
    links = [open_link(timeout=0.2, replicas=2) for _ in range(2)]
    a, b = RateLimiter(links[0], clock=clock), RateLimiter(links[1], clock=clock)
    limit = Limit(subject(), rpm=10)
    assert sum([(await a.admit([limit])).allowed for _ in range(2)]) == 2
    assert sum([(await b.admit([limit])).allowed for _ in range(8)]) == 8
    assert not (await a.admit([limit])).allowed
    own_redis.stop()
    assert sum([(await a.admit([limit])).allowed for _ in range(10)]) == 0
