"""One attempt against one target, and the upstream connection it opens.

`Attempter` sends a canonical call to one provider and brings back a canonical answer, or,
for a stream, an `OpenStream`: the connection read up to the first token (so a failure before
it can still fail over). `OpenStream` owns that connection's lifetime: closed, released or
drained in one place, whoever ends the stream.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from gateway.core.answer import Answer, Chunk
from gateway.core.call import Call
from gateway.errors import UpstreamError
from gateway.providers.stream import StreamDecoder
from gateway.routing.policy import Target
from gateway.thinking import Thinking
from gateway.upstream import UpstreamClient, UpstreamEvents, UpstreamResponse

if TYPE_CHECKING:
    from gateway.tracing import Tracing

# Once a stream is complete, wait this long for the upstream to end its body so the pooled
# connection can be reused; a provider that lingers loses its connection instead.
_DRAIN_SECONDS = 1.0


class OpenStream:
    """A streamed answer whose first token (or whole answer) has arrived: `held` chunks are
    decoded but not yet sent; `events` gives the rest."""

    __slots__ = ("decoder", "events", "held", "response", "target")

    def __init__(self, target: Target, response: UpstreamResponse,
                 decoder: StreamDecoder, events: UpstreamEvents,
                 held: list[Chunk]) -> None:
        self.target = target
        self.response = response
        self.decoder = decoder
        self.events = events
        self.held = held

    @property
    def complete(self) -> bool:
        """The upstream had sent everything, end marker included, by the first check."""
        return self.decoder.done

    async def drain(self) -> None:
        """After the end marker: read the body's end so the connection goes back to the pool."""
        if self.response.at_eof():
            self.response.release()
            return
        try:
            async with asyncio.timeout(_DRAIN_SECONDS):
                while await self.events.next_batch() is not None:
                    pass
        except (TimeoutError, UpstreamError):
            return
        self.response.release()

    def close(self) -> None:
        """close(), not release(): an unfinished upstream request must stop now."""
        if not self.response.closed:
            self.response.close()


class Attempter:
    def __init__(self, client: UpstreamClient, tracing: Tracing | None = None) -> None:
        self._client = client
        self._tracing = tracing  # None: no span, no header, nothing spent

    async def complete(self, target: Target, call: Call) -> Answer:
        if self._tracing is None:
            return await self._complete(target, call, None)
        span, headers = self._start_span(self._tracing, target, call)
        try:
            answer = await self._complete(target, call, headers)
        except BaseException as exc:
            self._tracing.end_attempt(span, exc)
            raise
        self._tracing.end_attempt(span, None)
        return answer

    async def open_stream(self, target: Target, call: Call) -> OpenStream:
        """Connect and read up to the first token, so failure before it can fail over (the
        attempt's span ends there: what follows is the call's)."""
        if self._tracing is None:
            return await self._open_stream(target, call, None)
        span, headers = self._start_span(self._tracing, target, call)
        try:
            opened = await self._open_stream(target, call, headers)
        except BaseException as exc:
            self._tracing.end_attempt(span, exc)
            raise
        self._tracing.end_attempt(span, None)
        return opened

    @staticmethod
    def _start_span(tracing: Tracing, target: Target, call: Call) -> tuple[Any, dict[str, str]]:
        provider = target.provider
        return tracing.start_attempt(provider.name, provider.config.kind, call.model.canonical,
                                     target.upstream_model)

    async def _send(self, target: Target, call: Call, thinking: Thinking,
                    stream: bool, headers: dict[str, str] | None) -> UpstreamResponse:
        """POST the call in the target's dialect; an error status is raised as the provider's
        error (the response is then released)."""
        provider = target.provider
        payload = provider.build_payload(call, target.upstream_model, thinking, stream)
        response = await self._client.send(provider, payload, headers)
        if response.status >= 300:
            try:
                raw = await self._client.read_error(provider, response)
            finally:
                response.release()
            raise provider.error_from_response(response.status, raw, response.headers)
        return response

    async def _complete(self, target: Target, call: Call,
                        headers: dict[str, str] | None) -> Answer:
        provider = target.provider
        thinking = target.thinking_for(call.thinking)
        response = await self._send(target, call, thinking, False, headers)
        try:
            raw = await self._client.read(provider, response)
        finally:
            response.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise provider.invalid_answer("the upstream answer is not JSON") from None
        return provider.translate_answer(data, call.model.canonical, thinking)

    async def _open_stream(self, target: Target, call: Call,
                           headers: dict[str, str] | None) -> OpenStream:
        provider = target.provider
        thinking = target.thinking_for(call.thinking)
        response = await self._send(target, call, thinking, True, headers)
        try:
            decoder = StreamDecoder(provider, call.model.canonical, thinking)
            events = UpstreamEvents(provider, response)
            held: list[Chunk] = []
            while (batch := await events.next_batch()) is not None:
                chunks, error = decoder.feed_batch(batch)
                if error is not None:
                    raise error  # nothing was sent yet: this target failed, try the next
                held.extend(chunks)
                if decoder.first_token_at or decoder.finished or decoder.done:
                    break
            if not held and not decoder.done:
                raise provider.invalid_answer("the stream ended before any chunk")
        except BaseException:
            response.close()
            raise
        return OpenStream(target, response, decoder, events, held)
