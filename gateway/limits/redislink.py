"""The one Redis client of a process, with its own breaker: rate limits and budgets (on the
request path), shared breakers and quota cooldowns (gateway/routing/shared.py) and the
key-change channel (gateway/keys/events.py) all use it.

Before it, each user had its own pool and logged every failure: a hung Redis cost every
limited request the 0.5 s socket timeout (1 s with a budget) for the whole outage, and
"Redis unavailable" was logged hundreds of times a second. Now the first failure marks Redis
down (one warning), callers skip it and count in-process, a background task probes it every
`probe_interval` seconds and marks it up again (one info line). No request pays a timeout
while Redis is known to be down, and the request path gives Redis `request_timeout` at most
(`deadline()`), so the request that finds a hung Redis pays only that. A call that outlasts
its deadline makes the request path skip Redis (`usable` is false) while one ping, with the
full `timeout`, tells a hung Redis (down, logged) from a busy one (used again, silently).

While up, every process beats once a heartbeat: one script puts its id in a sorted set
(`switchyard:replicas`, scored by when the beat runs out, on Redis's clock), drops the beats
that ran out and counts the rest. `replicas` is the last count seen, which is what local
limits divide by when Redis goes away (unless the config fixes it). It was a key per process
counted with SCAN: every process walked the whole keyspace every second, a round trip per 500
keys, and the rate-limit counters alone are two keys per limit and minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.tasks import stop

log = logging.getLogger("gateway.redis")

_REPLICAS = "switchyard:replicas"
# KEYS: the replica set. ARGV: this replica's id, seconds its beat lives. Returns the replicas
# whose beat has not run out, this one included.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local life = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + life, ARGV[1])
redis.call('EXPIRE', KEYS[1], life)
return redis.call('ZCARD', KEYS[1])
"""
FAILURES = (RedisError, OSError, TimeoutError)


class RedisLink:
    def __init__(self, url: str, *, timeout: float = 0.25, probe_interval: float = 1.0,
                 heartbeat: float = 1.0, replicas: int | None = None,
                 request_timeout: float = 0.03) -> None:
        self.client = redis.from_url(url, socket_timeout=timeout,
                                     socket_connect_timeout=timeout)
        self._beat_script = self.client.register_script(_BEAT)
        self.up = True
        self.request_timeout = request_timeout
        self._checking: asyncio.Task[None] | None = None  # the ping after a missed deadline
        self._back = asyncio.Event()  # set while up: what waits for Redis waits on it
        self._back.set()
        self._probe_interval = probe_interval
        self._heartbeat = heartbeat
        self._fixed_replicas = replicas
        self._seen_replicas = 1
        self._back_at: float | None = None  # loop time Redis was last marked up again
        self._id = uuid.uuid4().hex[:12]
        self._task: asyncio.Task[None] | None = None
        self._went_down = asyncio.Event()  # wakes the heartbeat's wait: probe at once

    @property
    def replicas(self) -> int:
        """Live gateway processes sharing this Redis (the last count seen, or configured)."""
        return self._fixed_replicas or self._seen_replicas

    @property
    def usable(self) -> bool:
        """May a request use Redis now: up, and no missed deadline still being checked."""
        return self.up and self._checking is None

    def deadline(self) -> asyncio.Timeout:
        """`async with link.deadline():` around a request-path call: TimeoutError (one of
        FAILURES) after `request_timeout`."""
        return asyncio.timeout(self.request_timeout)

    async def wait_up(self) -> None:
        """Return once Redis is (marked) up."""
        await self._back.wait()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-link")

    async def close(self) -> None:
        for task in (self._task, self._checking):
            await stop(task)
        self._task = self._checking = None
        if self.up:
            with contextlib.suppress(*FAILURES):
                async with asyncio.timeout(0.5):
                    await self.client.zrem(_REPLICAS, self._id)
        await self.client.aclose()

    def failed(self, exc: BaseException, what: str) -> None:
        """A call failed: Redis is down until the probe says otherwise (logged once). A
        timeout is checked first: a busy Redis (a burst of new connections) is not down."""
        if isinstance(exc, TimeoutError) and self.up:
            if self._checking is None:
                with contextlib.suppress(RuntimeError):  # no loop: counts as down
                    self._checking = asyncio.get_running_loop().create_task(
                        self._check(what), name="redis-check")
                    return
            else:
                return
        self._down(exc, what)

    async def _check(self, what: str) -> None:
        try:
            await self.client.ping()  # with the full socket timeout
        except FAILURES as exc:
            self._down(exc, what)
        finally:
            self._checking = None

    def _down(self, exc: BaseException, what: str) -> None:
        if self.up:
            log.warning("Redis unavailable (%s while %s): rate limits and budgets count "
                        "in-process, breakers stay local and cached keys live 1 s until it "
                        "returns", type(exc).__name__, what)
        self.up = False
        self._back.clear()
        self._went_down.set()
        if self._task is None:  # a link nobody started (tests, tools): it must still recover
            with contextlib.suppress(RuntimeError):
                self.start()

    async def _run(self) -> None:
        while True:
            if self.up:
                await self._beat()
                with contextlib.suppress(TimeoutError):  # not wait_for: see gateway/tasks.py
                    async with asyncio.timeout(self._heartbeat):
                        await self._went_down.wait()
            else:
                await asyncio.sleep(self._probe_interval)
                await self._probe()

    async def _probe(self) -> None:
        try:
            await self.client.ping()
        except FAILURES:
            return
        self.up = True
        self._back_at = asyncio.get_running_loop().time()
        self._went_down.clear()
        self._back.set()
        log.info("Redis is back: rate limits, budgets, breakers and key changes are shared "
                 "again")

    async def _beat(self) -> None:
        try:
            count = int(await self._beat_script(keys=[_REPLICAS], args=[self._id,
                                                                         self._beat_life]))
        except FAILURES as exc:
            self.failed(exc, "sending the heartbeat")
            return
        if (self._back_at is not None
                and asyncio.get_running_loop().time() - self._back_at < self._beat_life):
            # Just back (Redis restarted empty): the others may not have beaten yet. A count
            # of 1 then made the replica back first restore and share as if alone (a key
            # admitted 170 of rpm 120 in tests/e2e/test_redis_faults.py under load).
            count = max(count, self._seen_replicas)
        self._seen_replicas = max(1, count)

    @property
    def _beat_life(self) -> int:
        """Seconds a beat counts for: a count is whole once every replica beat since."""
        return max(1, int(self._heartbeat * 3))
