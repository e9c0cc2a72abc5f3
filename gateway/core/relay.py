"""Relaying a stream after its first token: canonical chunks in, the surface's bytes out.

Everything is sent as soon as it is rendered; only the last chunks and the end (or the error
event) share a write, since every write is a syscall and a wake-up. While a stream runs
smoothly, its reads are relayed from the upstream connection's own callback (`_push`) rather
than by the request's task: per read, waking the task and passing the bytes through a chain of
generators cost more than relaying them (bench/RESULTS-push-relay.md). A failure after the first
token cannot fail over any more: it ends the stream with the surface's one error event, never
a silently truncated 200. However the stream ends, `end` runs once: the breaker is settled,
reasoning remembered, the usage event recorded (before the final bytes go out, so a client
that has its answer never races the metering of it) and the upstream connection closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from gateway.core.answer import Chunk
from gateway.core.attempt import OpenStream
from gateway.core.drain import Drain
from gateway.core.record import CallRecord, estimate_usage
from gateway.core.surface import StreamRenderer
from gateway.errors import GatewayError, UpstreamError
from gateway.routing.failover import Served
from gateway.upstream import UpstreamEvents


class Relay:
    __slots__ = ("_cut", "_drain", "_ended", "_last", "_last_out", "_loop_time", "_one_event",
                 "_opened", "_passes", "_record", "_renderer", "_served", "_split", "_taken",
                 "_write")

    def __init__(self, served: Served[OpenStream], renderer: StreamRenderer,
                 record: CallRecord, drain: Drain | None = None) -> None:
        self._served = served
        self._opened = served.result
        self._renderer = renderer
        self._record = record
        self._drain = drain
        self._ended = False
        self._cut = False
        # How the relay's read loop stopped: the bytes rendered last, and the failure if any.
        self._last: tuple[bytes, UpstreamError | None] = (b"", None)
        # What `_push` left for the task: its rendered read (and failure), or what it raised.
        self._taken: tuple[bytes, UpstreamError | None] | Exception | None = None
        self._last_out = 0.0

    def render_held(self) -> bytes:
        return self._rendered(self._opened.held)

    def _rendered(self, chunks: list[Chunk]) -> bytes:
        render = self._renderer.chunk
        return b"".join([render(chunk) for chunk in chunks])

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

    async def chunks(self, write: Callable[[bytes], bool] | None = None
                     ) -> AsyncIterator[bytes]:
        """The stream's bytes after the first token, for the surface's sender. With `write`
        (the server's synchronous body writer: gateway/api/asgi.py `direct_body_writer`),
        the running stream is relayed from the upstream connection's callback (`_push`)
        and this yields only what needs the task: a write the client is not ready for, a
        keep-alive, the end or a failure."""
        opened = self._opened
        decoder = opened.decoder
        renderer = self._renderer
        try:
            pending = self.render_held()
            failure: UpstreamError | None = None
            if not decoder.done:
                yield pending
                pending = b""
                outs = (self._pulled() if write is None else self._pushed(write))
                try:
                    async for out in outs:
                        yield out
                except UpstreamError as err:
                    failure = err
                if failure is None:
                    pending, failure = self._last
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

    def _render(self, batch: list[bytes]) -> tuple[bytes, UpstreamError | None]:
        chunks, failure = self._opened.decoder.feed_batch(batch)
        return self._rendered(chunks), failure

    async def _pulled(self) -> AsyncIterator[bytes]:
        """Each read's rendered events, read by this task; stops at the stream's end or a
        failure with what came before it in `_last`."""
        renderer = self._renderer
        decoder = self._opened.decoder
        events = self._opened.events
        interval = renderer.keepalive_interval
        source = (_batches(events) if interval is None
                  else _with_keepalive(_batches(events), interval))
        async for batch in source:
            if batch is None:
                yield renderer.keepalive()
                continue
            out, failure = self._render(batch)
            if failure is not None or decoder.done:
                self._last = (out, failure)
                return
            if out:
                yield out

    async def _pushed(self, write: Callable[[bytes], bool]) -> AsyncIterator[bytes]:
        """`_pulled`, but while the stream runs smoothly this task waits and the connection
        pushes each read through `_push`, which writes it at once."""
        renderer = self._renderer
        decoder = self._opened.decoder
        events = self._opened.events
        interval = renderer.keepalive_interval
        loop = asyncio.get_running_loop()
        self._write = write
        self._split = events.splitter.feed
        # For a client that gets fast-path events as they came (`StreamRenderer.verbatim`).
        self._one_event = events.splitter.one_event if renderer.verbatim else None
        self._passes = decoder.passes
        self._loop_time = loop.time
        self._last_out = loop.time()
        while True:
            if interval is None:
                await events.push_to(self._push)
            else:
                try:
                    async with asyncio.timeout_at(self._last_out + interval):
                        await events.push_to(self._push)
                except TimeoutError:
                    if loop.time() >= self._last_out + interval:
                        self._last_out = loop.time()
                        yield renderer.keepalive()
                    continue
            taken, self._taken = self._taken, None
            if taken is None:  # reads came in meanwhile, or the body ended or failed
                batch = await events.next_batch()
                if batch is None:
                    return
                taken = self._render(batch)
            if isinstance(taken, BaseException):
                raise taken
            out, failure = taken
            if failure is not None or decoder.done:
                self._last = (out, failure)
                return
            if out:
                self._last_out = loop.time()
                yield out  # the client's writes are paused: the sender waits for them

    def _push(self, data: bytes) -> bool:
        """One read, in the upstream connection's callback: written at once when it is more
        of the running stream; False (the task takes over) at its end, a failure, or a
        client that cannot take more now."""
        try:
            failure: UpstreamError | None = None
            one_event = self._one_event
            if (one_event is not None and (event := one_event(data)) is not None
                    and (shape := self._passes(event)) is not None):
                # one fast-path event, which this client gets as it came (but for the model's
                # name, if the upstream calls it otherwise)
                renamed = shape[6]
                out = data if renamed is None else b"data: %s%s\n\n" % (renamed,
                                                                          event[shape[2]:])
            else:
                batch = self._split(data)
                if not batch:
                    return True
                if len(batch) == 1:  # the common read: one event (an in-band error raises)
                    chunk = self._opened.decoder.feed(batch[0])
                    out = b"" if chunk is None else self._renderer.chunk(chunk)
                else:
                    out, failure = self._render(batch)
            if failure is None and not self._opened.decoder.done:
                if not out:
                    return True
                if self._write(out):
                    self._last_out = self._loop_time()
                    return True
            self._taken = (out, failure)
        except Exception as exc:  # not the transport's failure: the task raises it
            self._taken = exc
        return False


async def _batches(events: UpstreamEvents) -> AsyncIterator[list[bytes]]:
    while (batch := await events.next_batch()) is not None:
        yield batch


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


