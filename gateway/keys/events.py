"""Key changes announced to every gateway process through Redis pub/sub.

The process that revokes or changes a key (or a team) PUBLISHes on `switchyard:keys`: a key's
hash, or `team:<name>`. Every process subscribes and drops those cache entries at once, so a
revocation is honoured everywhere within a round trip. While the subscription is down (Redis
unreachable), `live` is false and the authenticator falls back to short cache lifetimes; on
every (re)subscription the whole cache is dropped, since messages may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger("gateway.keys")

CHANNEL = "switchyard:keys"
TEAM_PREFIX = "team:"
_RETRY_MIN = 0.2
_RETRY_MAX = 5.0


class KeyEvents:
    def __init__(self, redis_url: str, on_message: Callable[[str], None],
                 on_resubscribe: Callable[[], None]) -> None:
        self._url = redis_url
        self._on_message = on_message
        self._on_resubscribe = on_resubscribe
        self._publisher = redis.from_url(redis_url, socket_timeout=0.5,
                                         socket_connect_timeout=0.5)
        self._task: asyncio.Task[None] | None = None
        self.live = False

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._publisher.aclose()

    async def publish(self, message: str) -> None:
        """Tell every process; a Redis failure is logged (the cache TTL bounds staleness)."""
        try:
            await self._publisher.publish(CHANNEL, message)
        except (RedisError, OSError) as exc:
            log.warning("cannot announce a key change through Redis (%s); other processes "
                        "notice within their cache lifetime", type(exc).__name__)

    async def _listen(self) -> None:
        delay = _RETRY_MIN
        while True:
            client = redis.from_url(self._url, socket_connect_timeout=1.0,
                                    health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._on_resubscribe()
                if not self.live:
                    log.info("listening for key changes on Redis channel %s", CHANNEL)
                self.live = True
                delay = _RETRY_MIN
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self._on_message(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.live:
                    log.warning("lost the Redis key-change channel (%s); caching keys briefly "
                                "until it is back", type(exc).__name__)
                self.live = False
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(_RETRY_MAX, delay * 2)
