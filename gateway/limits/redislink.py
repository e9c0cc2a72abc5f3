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

While up, every process keeps a heartbeat key (`switchyard:replica:<id>`, expiring) and
counts the live ones: `replicas` is the last count seen, which is what local limits divide by
when Redis goes away (unless the config fixes it).
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

_REPLICA_PREFIX = "switchyard:replica:"
FAILURES = (RedisError, OSError, TimeoutError)


class RedisLink:
    def __init__(self, url: str, *, timeout: float = 0.25, probe_interval: float = 1.0,
                 heartbeat: float = 1.0, replicas: int | None = None,
                 request_timeout: float = 0.03) -> None:
        self.client = redis.from_url(url, socket_timeout=timeout,
                                     socket_connect_timeout=timeout)
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
                    await self.client.delete(_REPLICA_PREFIX + self._id)
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
            await self.client.set(_REPLICA_PREFIX + self._id, "1", ex=self._key_life)
            count = 0
            async for _ in self.client.scan_iter(match=_REPLICA_PREFIX + "*", count=500):
                count += 1
        except FAILURES as exc:
            self.failed(exc, "sending the heartbeat")
            return
        if (self._back_at is not None
                and asyncio.get_running_loop().time() - self._back_at < self._key_life):
            # Just back (Redis restarted empty): the others may not have beaten yet. A count
            # of 1 then made the replica back first restore and share as if alone (a key
            # admitted 170 of rpm 120 in tests/e2e/test_redis_faults.py under load).
            count = max(count, self._seen_replicas)
        self._seen_replicas = max(1, count)

    @property
    def _key_life(self) -> int:
        """Seconds a heartbeat key lives: a count is whole once every replica beat since."""
        return max(1, int(self._heartbeat * 3))
