"""Key changes announced to every gateway process through Redis pub/sub.

The process that revokes or changes a key (or a team) PUBLISHes on `switchyard:keys`: a key's
hash, or `team:<name>`. Every process subscribes and drops those cache entries at once, so a
revocation is honoured everywhere within a round trip. Both go through the process's one Redis
link (gateway/limits/redislink.py, which logs when Redis goes and returns): while it has Redis
down (refused, or hung: the subscription of a frozen Redis just hears nothing), `live` is false
and the authenticator re-checks cached keys within 1 s; on every (re)subscription the whole
cache is dropped, since messages may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.limits.redislink import FAILURES, RedisLink
from gateway.tasks import stop

log = logging.getLogger("gateway.keys")

CHANNEL = "switchyard:keys"
TEAM_PREFIX = "team:"
_POLL = 0.25  # how often the listener looks at the link while the channel is quiet


class KeyEvents:
    def __init__(self, link: str | RedisLink, on_message: Callable[[str], None],
                 on_resubscribe: Callable[[], None]) -> None:
        self._owns_link = isinstance(link, str)  # a URL: tests and tools
        self._link = RedisLink(link) if isinstance(link, str) else link
        self.link = self._link
        self._on_message = on_message
        self._on_resubscribe = on_resubscribe
        self._task: asyncio.Task[None] | None = None
        self.live = False

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="key-events")

    async def close(self) -> None:
        await stop(self._task)
        if self._owns_link:
            await self._link.close()

    async def publish(self, message: str) -> None:
        """Tell every process; with Redis down they notice within their 1 s cache lifetime."""
        if not self._link.up:
            return
        try:
            async with asyncio.timeout(self._link.request_timeout * 10):  # an admin call
                await self._link.client.publish(CHANNEL, message)
        except FAILURES as exc:
            self._link.failed(exc, "announcing a key change")

    async def _listen(self) -> None:
        announced = False
        while True:
            await self._link.wait_up()
            pubsub = self._link.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._on_resubscribe()
                self.live = True
                if not announced:
                    log.info("listening for key changes on Redis channel %s", CHANNEL)
                    announced = True
                while self._link.up:  # a hung Redis: the link's heartbeat notices
                    message = await pubsub.get_message(timeout=_POLL)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self._on_message(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except FAILURES as exc:
                self._link.failed(exc, "listening for key changes")
            finally:
                self.live = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            if self._link.up:  # the link has not seen it yet: do not spin
                await asyncio.sleep(_POLL)
