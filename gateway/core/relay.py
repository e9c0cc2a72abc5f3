"""Relaying a stream after its first token: canonical chunks in, the surface's bytes out.

Everything is sent as soon as it is rendered; only the last chunks and the end (or the error
event) share a write, since every write is a syscall and a wake-up. A failure after the first
token cannot fail over any more: it ends the stream with the surface's one error event, never
a silently truncated 200. However the stream ends, `end` runs once: the breaker is settled,
reasoning remembered, the usage event recorded (before the final bytes go out, so a client
that has its answer never races the metering of it) and the upstream connection closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from gateway.core.attempt import OpenStream
from gateway.core.drain import Drain
from gateway.core.record import CallRecord, estimate_usage
from gateway.core.surface import StreamRenderer
from gateway.errors import GatewayError, UpstreamError
from gateway.routing.failover import Served


class Relay:
    __slots__ = ("_cut", "_drain", "_ended", "_opened", "_record", "_renderer", "_served")

    def __init__(self, served: Served[OpenStream], renderer: StreamRenderer,
                 record: CallRecord, drain: Drain | None = None) -> None:
        self._served = served
        self._opened = served.result
        self._renderer = renderer
        self._record = record
        self._drain = drain
        self._ended = False
        self._cut = False

    def render_held(self) -> bytes:
        render = self._renderer.chunk
        return b"".join([render(chunk) for chunk in self._opened.held])

    async def whole(self) -> bytes:
        """A stream the upstream had already finished: every event at once."""
        body = self.render_held() + self._renderer.finish(self._opened.decoder.usage)
        self._end_complete()
        await self._opened.drain()
        self._opened.close()
        return body

    def end(self, status: str, error: UpstreamError | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        decoder = self._opened.decoder
        decoder.remember_reasoning()
        self._served.settle(error)
        self._record.stream_ended(status, decoder.usage or estimate_usage(decoder.relayed_chars),
                                  decoder.first_token_at, error)

    def _end_complete(self) -> None:
        """The stream came to its end; one the provider cut short is still its failure (the
        surface renders that finish reason in its own way)."""
        decoder = self._opened.decoder
        if decoder.cut_short is not None:
            self.end("interrupted", self._opened.target.provider.cut_short(decoder.cut_short))
        else:
            self.end("ok")

    def cut(self, error: GatewayError) -> bytes | None:
        """The drain's deadline cut this stream: recorded as `shutdown` (not the provider's
        failure, so its breaker is not charged) and the surface's error event to end it with;
        None when the stream had already ended some other way."""
        if self._ended and not self._cut:
            return None
        if not self._ended:
            self._ended = self._cut = True
            decoder = self._opened.decoder
            decoder.remember_reasoning()
            self._served.settle(None)
            self._record.stream_ended(
                "shutdown", decoder.usage or estimate_usage(decoder.relayed_chars),
                decoder.first_token_at, error)
        self._opened.close()
        return self._renderer.error(error)

    def cut_by(self, drain: Drain) -> Callable[[], bytes | None]:
        """For the sender's `except CancelledError`: the error event when the drain cut."""

        def tail() -> bytes | None:
            return self.cut(drain.cut_error()) if drain.uncancel_if_cut() else None

        return tail

    def abandon(self) -> None:
        """The response ended without the relay running to its end (e.g. a hang-up before the
        first write): account for it and free the connection."""
        self.end("client_cancelled")
        self._opened.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        opened = self._opened
        decoder = opened.decoder
        renderer = self._renderer
        render = renderer.chunk
        try:
            pending = self.render_held()
            failure: UpstreamError | None = None
            if not decoder.done:
                yield pending
                pending = b""
                interval = renderer.keepalive_interval
                source: AsyncIterator[list[bytes] | None] = (
                    opened.batches if interval is None
                    else _with_keepalive(opened.batches, interval))
                try:
                    async for batch in source:
                        if batch is None:
                            yield renderer.keepalive()
                            continue
                        chunks, failure = decoder.feed_batch(batch)
                        out = b"".join([render(chunk) for chunk in chunks])
                        if failure is not None or decoder.done:
                            pending = out
                            break
                        if out:
                            yield out
                except UpstreamError as err:
                    failure = err
                if failure is None and not (decoder.done or decoder.finished):
                    failure = opened.target.provider.invalid_answer(
                        "the stream ended before the answer was complete"
                    )
            if failure is not None:
                self.end("interrupted", failure)
                yield pending + renderer.error(failure)
                return
            self._end_complete()
            yield pending + renderer.finish(decoder.usage)
            await opened.drain()
        except (asyncio.CancelledError, GeneratorExit):
            if self._drain is not None and self._drain.cutting:
                self.cut(self._drain.cut_error())
            else:
                self.end("client_cancelled")
            raise
        finally:
            self.end("error")
            opened.close()


async def _with_keepalive(
    batches: AsyncIterator[list[bytes]], interval: float
) -> AsyncIterator[list[bytes] | None]:
    """The batches, with None whenever the upstream has been silent for `interval` seconds.
    The pending read is a task, so waiting on it with a timeout never cancels the read."""
    iterator = batches.__aiter__()
    pending: asyncio.Future[list[bytes]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait((pending,), timeout=interval)
            if not done:
                yield None
                continue
            ready, pending = pending, None
            try:
                batch = ready.result()
            except StopAsyncIteration:
                return
            yield batch
    finally:
        if pending is not None:
            pending.cancel()


