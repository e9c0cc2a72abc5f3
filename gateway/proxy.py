"""The core: one attempt against one target, and the stream relay; `Failover` picks targets.

For a stream, the gateway holds back the opening chunks until the first token arrives (within
the provider's first-byte timeout), so an upstream that fails before producing anything can
still be replaced; after that, a failure ends the stream with one OpenAI-format error event,
never a silently truncated 200, and the usage event says "interrupted".

Every request, answered or not, ends as one `UsageEvent` handed to the usage sink.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import orjson

from gateway.errors import UpstreamError
from gateway.keys.principal import Principal
from gateway.request import ChatRequest
from gateway.routing.failover import AllTargetsFailed, Attempts, Failover
from gateway.routing.policy import Target
from gateway.streaming import DONE_EVENT, StreamTranslator, error_event, sse_batches
from gateway.upstream import UpstreamClient
from gateway.usage import Usage, UsageEvent, UsageSink

# Once [DONE] is relayed, wait this long for the upstream to end its body so the pooled
# connection can be reused; a provider that lingers loses its connection instead.
_DRAIN_SECONDS = 1.0
# Rough characters per token, for streams that end before the upstream reported usage.
_CHARS_PER_TOKEN = 4


@dataclass(slots=True)
class Completion:
    body: bytes
    target: Target
    attempts: Attempts


@dataclass(slots=True)
class StreamingAnswer:
    """Either `chunks` to relay as they come, or, when the upstream had already sent the
    whole answer by the time it was checked, the `whole` event stream to send in one write
    (nothing left to cancel, so no disconnect watch is needed)."""

    target: Target
    attempts: Attempts
    chunks: AsyncIterator[bytes] | None
    whole: bytes | None = None


@dataclass(slots=True)
class _OpenStream:
    target: Target
    response: aiohttp.ClientResponse
    translator: StreamTranslator
    batches: AsyncIterator[list[bytes]]
    held: bytes


class ChatProxy:
    def __init__(self, failover: Failover, client: UpstreamClient, sink: UsageSink) -> None:
        self._failover = failover
        self._client = client
        self._sink = sink

    # ---- non-streaming ----------------------------------------------------------------

    async def complete(
        self, req: ChatRequest, request_id: str, pinned: str | None = None,
        principal: Principal | None = None,
    ) -> Completion:
        started = time.monotonic()
        event = self._event(req, request_id, principal)

        upstream_s = 0.0

        async def attempt(target: Target, seconds_left: float) -> tuple[bytes, Usage | None]:
            nonlocal upstream_s
            began = time.monotonic()
            try:
                if seconds_left < target.provider.timeouts.total:
                    async with _Deadline(target, seconds_left):
                        answer = await self._complete_once(target, req)
                else:  # aiohttp's own total timeout already bounds the attempt
                    answer = await self._complete_once(target, req)
            finally:
                upstream_s += time.monotonic() - began
            self._failover.latency.observe(target.key, time.monotonic() - began)
            return answer

        try:
            served = await self._failover.run(req.model.canonical, pinned, attempt)
        except AllTargetsFailed as failed:
            raise self._failed(event, failed, started) from None
        body, usage = served.result
        event.ttft_s = time.monotonic() - started
        event.overhead_s = event.ttft_s - upstream_s
        self._finish(event, "ok", served.target, served.attempts, usage, started)
        return Completion(body, served.target, served.attempts)

    async def _complete_once(
        self, target: Target, req: ChatRequest
    ) -> tuple[bytes, Usage | None]:
        provider = target.provider
        thinking = target.thinking_for(req.thinking)
        payload = provider.build_payload(req.body, target.upstream_model, thinking, False)
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
        answer, usage = provider.translate_answer(data, req.model.canonical, thinking)
        return orjson.dumps(answer), usage

    # ---- streaming --------------------------------------------------------------------

    async def stream(
        self, req: ChatRequest, request_id: str, pinned: str | None = None,
        principal: Principal | None = None,
    ) -> StreamingAnswer:
        started = time.monotonic()
        event = self._event(req, request_id, principal)

        upstream_s = 0.0

        async def attempt(target: Target, seconds_left: float) -> _OpenStream:
            nonlocal upstream_s
            began = time.monotonic()
            # The first-byte timeout covers everything up to the first token: keep-alive
            # comments before it do not count as progress.
            try:
                async with _Deadline(
                    target, min(seconds_left, target.provider.timeouts.first_byte)
                ):
                    return await self._open_stream(target, req)
            finally:
                upstream_s += time.monotonic() - began

        try:
            served = await self._failover.run(req.model.canonical, pinned, attempt)
        except AllTargetsFailed as failed:
            raise self._failed(event, failed, started) from None
        event.overhead_s = time.monotonic() - started - upstream_s
        event.attempts = served.attempts.items
        opened = served.result
        if opened.translator.first_token_at is not None:
            self._failover.latency.observe(
                served.target.key, opened.translator.first_token_at - started
            )
        if opened.translator.done:
            self._record_stream(opened, event, started, "ok")
            await self._drain(opened)
            if not opened.response.closed:
                opened.response.close()
            return StreamingAnswer(served.target, served.attempts, None,
                                   whole=opened.held + DONE_EVENT)
        return StreamingAnswer(served.target, served.attempts, self._relay(opened, event, started))

    async def _open_stream(self, target: Target, req: ChatRequest) -> _OpenStream:
        """Connect and read up to the first token, so failure before it can fail over."""
        provider = target.provider
        thinking = target.thinking_for(req.thinking)
        payload = provider.build_payload(req.body, target.upstream_model, thinking, True)
        response = await self._client.send(provider, payload)
        try:
            if response.status >= 300:
                raw = await self._client.read_error(provider, response)
                raise provider.error_from_response(response.status, raw, response.headers)
            translator = StreamTranslator(
                provider, req.model.canonical, thinking, req.include_usage
            )
            batches = sse_batches(self._client.chunks(provider, response))
            held: list[bytes] = []
            async for batch in batches:
                out, error = translator.feed_batch(batch)
                if error is not None:
                    raise error  # nothing was sent yet: this target failed, try the next
                if out:
                    held.append(out)
                if translator.first_token_at or translator.finished or translator.done:
                    break
            if not held and not translator.done:
                raise provider.invalid_answer("the stream ended before any chunk")
        except BaseException:
            response.close()
            raise
        return _OpenStream(target, response, translator, batches, b"".join(held))

    async def _relay(
        self, opened: _OpenStream, event: UsageEvent, started: float
    ) -> AsyncIterator[bytes]:
        """Yield the client's bytes as they arrive; always close upstream and record usage.

        The usage event is recorded before the final event goes out, so a client that has
        its answer never races the metering of it."""
        translator = opened.translator
        recorded = False

        def record(status: str) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self._record_stream(opened, event, started, status)

        try:
            # Everything is sent as soon as it is translated; only the last chunks and [DONE]
            # (or the error event) share a write, since every write is a syscall and a wake-up.
            pending = opened.held
            failure: UpstreamError | None = None
            if not translator.done:
                yield pending
                pending = b""
                try:
                    async for batch in opened.batches:
                        out, failure = translator.feed_batch(batch)
                        if failure is not None or translator.done:
                            pending = out
                            break
                        if out:
                            yield out
                except UpstreamError as err:
                    failure = err
                if failure is None and not (translator.done or translator.finished):
                    failure = opened.target.provider.invalid_answer(
                        "the stream ended before the answer was complete"
                    )
            if failure is not None:
                event.error_type = failure.code
                self._failover.board.record_failure(opened.target.key)
                record("interrupted")
                yield pending + error_event(failure)
                return
            record("ok")
            yield pending + DONE_EVENT
            await self._drain(opened)
        except (asyncio.CancelledError, GeneratorExit):
            record("client_cancelled")
            raise
        finally:
            record("error")
            # close(), not release(): an unfinished upstream request must stop now.
            if not opened.response.closed:
                opened.response.close()

    def _record_stream(
        self, opened: _OpenStream, event: UsageEvent, started: float, status: str
    ) -> None:
        translator = opened.translator
        translator.remember_reasoning()
        if translator.first_token_at is not None:
            event.ttft_s = translator.first_token_at - started
        usage = translator.usage or _estimate(translator)
        self._finish(event, status, opened.target, None, usage, started)

    async def _drain(self, opened: _OpenStream) -> None:
        if opened.response.content.at_eof():
            opened.response.release()
            return
        try:
            async with asyncio.timeout(_DRAIN_SECONDS):
                async for _ in opened.batches:
                    pass
        except (TimeoutError, UpstreamError):
            return
        opened.response.release()

    # ---- bookkeeping ------------------------------------------------------------------

    @staticmethod
    def _event(req: ChatRequest, request_id: str, principal: Principal | None) -> UsageEvent:
        user = req.body.get("user")
        return UsageEvent(
            principal=principal,
            key_id=principal.key_id if principal else None,
            team=principal.team if principal else None,
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
        self, event: UsageEvent, failed: AllTargetsFailed, started: float
    ) -> UpstreamError:
        error = failed.error
        error.headers["x-gateway-attempts"] = failed.attempts.header()
        error.headers["x-gateway-provider"] = error.provider
        event.error_type = error.code or error.error_type
        self._finish(event, "error", None, failed.attempts, None, started)
        return error


class _Deadline:
    """Bound one attempt; running out is the upstream's timeout, so it fails over."""

    __slots__ = ("_seconds", "_target", "_timeout")

    def __init__(self, target: Target, seconds: float) -> None:
        self._target = target
        self._seconds = seconds
        self._timeout = asyncio.timeout(seconds)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self._timeout.__aexit__(kind, exc, tb)
        except TimeoutError:
            name = self._target.provider.name
            raise UpstreamError(
                f"{name} did not answer within {self._seconds:.1f} s",
                provider=name, upstream_status=None, code="upstream_timeout",
            ) from None


def _estimate(translator: StreamTranslator) -> Usage | None:
    """Completion tokens from what was relayed, when the upstream never said."""
    if not translator.relayed_chars:
        return None
    return Usage(
        completion_tokens=max(1, translator.relayed_chars // _CHARS_PER_TOKEN), estimated=True
    )
