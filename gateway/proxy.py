"""The core: send a parsed request to its targets in order and hand back one canonical answer.

A target that fails in a way another may not (connection errors, timeouts, 429, 5xx, a 2xx
that is not a valid answer, our own key refused) is followed by the next one, as long as no
byte has reached the client; a client's own mistake (400/404/422) is returned at once. For a
stream, the gateway holds back the opening chunks until the first token arrives, so an upstream
that fails before producing anything can still be replaced; after that, a failure ends the
stream with one OpenAI-format error event, never a silently truncated 200.

Every request, answered or not, ends as one `UsageEvent` handed to the usage sink.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import orjson

from gateway.errors import UpstreamError
from gateway.request import ChatRequest
from gateway.routing.policy import RouteTable, Target
from gateway.streaming import DONE_EVENT, StreamTranslator, error_event, sse_events
from gateway.upstream import UpstreamClient
from gateway.usage import Usage, UsageEvent, UsageSink

# Once [DONE] is relayed, wait this long for the upstream to end its body so the pooled
# connection can be reused; a provider that lingers loses its connection instead.
_DRAIN_SECONDS = 1.0
# Rough characters per token, for streams that end before the upstream reported usage.
_CHARS_PER_TOKEN = 4


@dataclass(slots=True)
class Attempts:
    """Which targets were tried and how each ended, e.g. `ollama:503,deepseek:200`."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, provider: str, outcome: str) -> None:
        self.items.append((provider, outcome))

    def header(self) -> str:
        return ",".join(f"{p}:{o}" for p, o in self.items)


@dataclass(slots=True)
class Completion:
    body: bytes
    target: Target
    attempts: Attempts


@dataclass(slots=True)
class StreamingAnswer:
    target: Target
    attempts: Attempts
    chunks: AsyncIterator[bytes]


@dataclass(slots=True)
class _OpenStream:
    target: Target
    response: aiohttp.ClientResponse
    translator: StreamTranslator
    events: AsyncIterator[bytes]
    held: list[bytes]


class ChatProxy:
    def __init__(self, routes: RouteTable, client: UpstreamClient, sink: UsageSink) -> None:
        self._routes = routes
        self._client = client
        self._sink = sink

    # ---- non-streaming ----------------------------------------------------------------

    async def complete(
        self, req: ChatRequest, request_id: str, pinned: str | None = None
    ) -> Completion:
        started = time.monotonic()
        event = self._event(req, request_id)
        attempts = Attempts()
        last: UpstreamError | None = None
        for target in self._routes.targets(req.model.canonical, pinned):
            try:
                body, usage = await self._complete_once(target, req)
            except UpstreamError as err:
                attempts.add(target.provider.name, err.outcome)
                last = err
                if not err.retryable:
                    break
                continue
            attempts.add(target.provider.name, "200")
            self._finish(event, "ok", target, attempts, usage, started)
            return Completion(body, target, attempts)
        raise self._failed(event, last, attempts, started)

    async def _complete_once(
        self, target: Target, req: ChatRequest
    ) -> tuple[bytes, Usage | None]:
        provider = target.provider
        payload = provider.build_payload(req.body, target.upstream_model, req.thinking, False)
        response = await self._client.send(provider, payload)
        try:
            if response.status >= 300:
                raw = await self._client.read_error(provider, response)
                raise provider.error_from_response(response.status, raw, response.headers)
            raw = await self._client.read(provider, response)
        finally:
            response.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise provider.invalid_answer("the upstream answer is not JSON") from None
        answer, usage = provider.translate_answer(data, req.model.canonical, req.thinking)
        return orjson.dumps(answer), usage

    # ---- streaming --------------------------------------------------------------------

    async def stream(
        self, req: ChatRequest, request_id: str, pinned: str | None = None
    ) -> StreamingAnswer:
        started = time.monotonic()
        event = self._event(req, request_id)
        attempts = Attempts()
        last: UpstreamError | None = None
        for target in self._routes.targets(req.model.canonical, pinned):
            try:
                opened = await self._open_stream(target, req)
            except UpstreamError as err:
                attempts.add(target.provider.name, err.outcome)
                last = err
                if not err.retryable:
                    break
                continue
            attempts.add(target.provider.name, "200")
            event.attempts = attempts.items
            return StreamingAnswer(target, attempts, self._relay(opened, event, started))
        raise self._failed(event, last, attempts, started)

    async def _open_stream(self, target: Target, req: ChatRequest) -> _OpenStream:
        """Connect and read up to the first token, so failure before it can fail over."""
        provider = target.provider
        payload = provider.build_payload(req.body, target.upstream_model, req.thinking, True)
        response = await self._client.send(provider, payload)
        try:
            if response.status >= 300:
                raw = await self._client.read_error(provider, response)
                raise provider.error_from_response(response.status, raw, response.headers)
            translator = StreamTranslator(
                provider, req.model.canonical, req.thinking, req.include_usage
            )
            events = sse_events(self._client.chunks(provider, response))
            held: list[bytes] = []
            async for data in events:
                out = translator.feed(data)
                if out is not None:
                    held.append(out)
                if translator.first_token_at or translator.finished or translator.done:
                    break
            if not held and not translator.done:
                raise provider.invalid_answer("the stream ended before any chunk")
        except BaseException:
            response.close()
            raise
        return _OpenStream(target, response, translator, events, held)

    async def _relay(
        self, opened: _OpenStream, event: UsageEvent, started: float
    ) -> AsyncIterator[bytes]:
        """Yield the client's bytes as they arrive; always close upstream and record usage."""
        translator, status = opened.translator, "ok"
        try:
            for chunk in opened.held:
                yield chunk
            failure: UpstreamError | None = None
            if not translator.done:
                try:
                    async for data in opened.events:
                        out = translator.feed(data)
                        if out is not None:
                            yield out
                        if translator.done:
                            break
                except UpstreamError as err:
                    failure = err
                if failure is None and not (translator.done or translator.finished):
                    failure = opened.target.provider.invalid_answer(
                        "the stream ended before the answer was complete"
                    )
            if failure is not None:
                status = "interrupted"
                event.error_type = failure.code
                yield error_event(failure)
                return
            yield DONE_EVENT
            await self._drain(opened)
        except (asyncio.CancelledError, GeneratorExit):
            status = "client_cancelled"
            raise
        finally:
            # close(), not release(): an unfinished upstream request must stop now.
            if not opened.response.closed:
                opened.response.close()
            translator.remember_reasoning()
            if translator.first_token_at is not None:
                event.ttft_s = translator.first_token_at - started
            usage = translator.usage or _estimate(translator)
            self._finish(event, status, opened.target, None, usage, started)

    async def _drain(self, opened: _OpenStream) -> None:
        try:
            async with asyncio.timeout(_DRAIN_SECONDS):
                async for _ in opened.events:
                    pass
        except (TimeoutError, UpstreamError):
            return
        opened.response.release()

    # ---- bookkeeping ------------------------------------------------------------------

    @staticmethod
    def _event(req: ChatRequest, request_id: str) -> UsageEvent:
        user = req.body.get("user")
        return UsageEvent(
            request_id=request_id,
            requested_model=req.requested_model,
            model=req.model.canonical,
            thinking=req.thinking.label,
            stream=req.stream,
            status="pending",
            client_user=user if isinstance(user, str) else None,
        )

    def _finish(
        self,
        event: UsageEvent,
        status: str,
        target: Target | None,
        attempts: Attempts | None,
        usage: Usage | None,
        started: float,
    ) -> None:
        event.status = status
        event.latency_s = time.monotonic() - started
        event.usage = usage
        if target is not None:
            event.provider = target.provider.name
            event.upstream_model = target.upstream_model
        if attempts is not None:
            event.attempts = attempts.items
        self._sink.record(event)

    def _failed(
        self,
        event: UsageEvent,
        error: UpstreamError | None,
        attempts: Attempts,
        started: float,
    ) -> UpstreamError:
        if error is None:  # unreachable: targets() never returns an empty route
            error = UpstreamError("no upstream was tried", provider="", upstream_status=None)
        error.headers["x-gateway-attempts"] = attempts.header()
        error.headers["x-gateway-provider"] = error.provider
        event.error_type = error.code or error.error_type
        self._finish(event, "error", None, attempts, None, started)
        return error


def _estimate(translator: StreamTranslator) -> Usage | None:
    """Completion tokens from what was relayed, when the upstream never said."""
    if not translator.relayed_chars:
        return None
    return Usage(
        completion_tokens=max(1, translator.relayed_chars // _CHARS_PER_TOKEN), estimated=True
    )
