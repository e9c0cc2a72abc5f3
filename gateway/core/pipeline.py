"""The request pipeline every surface shares, as a raw ASGI callable.

authenticate -> read body -> the surface parses a canonical call -> admission -> (a stateful
surface completes the call for its caller: `PreparesCalls`) -> failover over provider attempts
-> the surface renders the answer or the stream -> exactly one usage event (`CallRecord`),
refusals included. The chat hot path skips FastAPI and Starlette's
request/response objects and middleware: on an instant upstream they cost more than the whole
proxying work (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from starlette.types import Receive, Scope, Send

from gateway.api.asgi import (
    RawHeaders,
    RequestHeaders,
    RequestIds,
    direct_body_writer,
    header_list,
    read_body,
    send_event_stream,
    send_json,
    send_whole_event_stream,
)
from gateway.auth import KeyAuthenticator
from gateway.core.dispatch import AllTargetsFailed, Dispatcher
from gateway.core.drain import Drain
from gateway.core.record import CallRecord
from gateway.core.relay import Relay
from gateway.core.surface import AnswersOtherMethods, PreparesCalls, Surface
from gateway.errors import GatewayError
from gateway.limits.admission import Admission
from gateway.models import check_output_limit
from gateway.routing.failover import Attempts
from gateway.routing.policy import Target
from gateway.tracing import Tracing
from gateway.usage import UsageSink

log = logging.getLogger("gateway")


class Pipeline:
    """Serves one surface's POST paths."""

    def __init__(self, surface: Surface, *, auth: KeyAuthenticator, max_body_bytes: int,
                 admission: Admission, dispatcher: Dispatcher, sink: UsageSink,
                 new_id: RequestIds, drain: Drain | None = None,
                 tracing: Tracing | None = None) -> None:
        self.surface = surface
        self._tracing = tracing  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
        self._drain = drain or Drain(0)
        self.paths = surface.paths | surface.local_paths.keys()
        self._auth = auth
        self._max_body = max_body_bytes
        self._admission = admission
        self._dispatcher = dispatcher
        self._sink = sink
        self._new_id = new_id
        self._prepare = surface.prepare if isinstance(surface, PreparesCalls) else None
        # (METHOD, path) of the requests other than POST that the surface answers itself.
        self.local_routes: Mapping[tuple[str, str], Callable[[bytes], bytes]] = (
            surface.local_routes if isinstance(surface, AnswersOtherMethods) else {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        local = self.surface.local_paths.get(scope["path"])
        if local is not None:
            await self._answer_locally(local, scope, receive, send)
            return
        headers = RequestHeaders(scope, self._new_id)
        surface = self.surface
        record = CallRecord(self._sink, surface.api, headers.request_id)
        tracing = self._tracing
        span = tracing.start_call(surface.api, headers.traceparent) if tracing else None
        started = False
        drain = self._drain
        task = drain.enter()
        relay: Relay | None = None
        try:
            if drain.draining:
                raise drain.refusal()
            client = scope.get("client")
            principal = await self._auth.authenticate(
                headers.authorization, headers.api_key, client[0] if client else None)
            record.identify(principal)
            raw = await read_body(receive, headers.content_length, self._max_body)
            call = surface.parse(raw)
            record.describe(call)
            check_output_limit(call.model, call.params)  # the model's, for every provider
            extra = await self._admission.admit(
                principal, call.model.canonical, call.requested_model)
            if self._prepare is not None:
                await self._prepare(call, principal)
            if call.stream:
                streamed = await self._dispatcher.stream(call, headers.pinned)
                record.served_by(streamed.target, streamed.attempts)
                started = True
                relay = Relay(streamed, surface.stream_renderer(call), record, drain)
                response_headers = header_list(headers.request_id, extra)
                response_headers += _served_by(streamed.target, streamed.attempts)
                if streamed.result.complete:
                    await send_whole_event_stream(
                        send, await relay.whole(), response_headers, surface.stream_content_type)
                    return
                try:
                    await send_event_stream(scope, receive, send,
                                            relay.chunks(direct_body_writer(send)),
                                            response_headers, surface.stream_content_type,
                                            on_cut=relay.cut_by(drain))
                finally:
                    relay.abandon()  # a no-op when the relay ran to its end
                return
            served = await self._dispatcher.complete(call, headers.pinned)
            record.served_by(served.target, served.attempts)
            answer = served.result
            record.answered(answer.usage)
            started = True
            response_headers = header_list(headers.request_id, extra)
            response_headers += _served_by(served.target, served.attempts)
            await send_json(send, 200, surface.render_answer(call, answer), response_headers)
        except AllTargetsFailed as failed:
            error = failed.error
            error.headers["x-gateway-attempts"] = failed.attempts.header()
            error.headers["x-gateway-provider"] = error.provider
            record.failed(error, failed.attempts)
            if not started:
                await self._send_error(send, error, headers.request_id)
        except GatewayError as err:
            if record.open:
                record.refused(err)
            if not started:
                await self._send_error(send, err, headers.request_id)
        except Exception:
            log.exception("unhandled error in request %s", headers.request_id)
            record.abandoned(reason="internal_error")
            if not started:
                await self._send_error(send, _internal(headers.request_id), headers.request_id)
        except asyncio.CancelledError:
            if not drain.uncancel_if_cut():
                raise
            # The drain's deadline: this call gets a proper error and a `shutdown` row.
            cut = drain.cut_error()
            if relay is not None:
                relay.cut(cut)
            record.abandoned("shutdown", reason=cut.reason)
            if not started:
                await self._send_error(send, cut, headers.request_id)
        finally:
            record.abandoned("client_cancelled")
            if tracing is not None:
                tracing.end_call(span, record.event)
            drain.leave(task)

    async def answer_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request of one of `local_routes` (the caller found it there)."""
        answer = self.local_routes[(scope["method"], scope["path"])]
        await self._answer_locally(answer, scope, receive, send)

    async def _answer_locally(self, answer: Callable[[bytes], bytes], scope: Scope,
                              receive: Receive, send: Send) -> None:
        """A request the surface answers itself: authenticated and size-limited like a call,
        but no upstream is asked, so there is nothing to meter."""
        headers = RequestHeaders(scope, self._new_id)
        try:
            if self._drain.draining:
                raise self._drain.refusal()
            client = scope.get("client")
            await self._auth.authenticate(
                headers.authorization, headers.api_key, client[0] if client else None)
            raw = await read_body(receive, headers.content_length, self._max_body)
            body = answer(raw)
        except GatewayError as err:
            await self._send_error(send, err, headers.request_id)
            return
        except Exception:
            log.exception("unhandled error in request %s", headers.request_id)
            await self._send_error(send, _internal(headers.request_id), headers.request_id)
            return
        await send_json(send, 200, body, header_list(headers.request_id, {}))

    async def _send_error(self, send: Send, error: GatewayError, request_id: str) -> None:
        status, extra, body = self.surface.render_error(error)
        await send_json(send, status, body, header_list(request_id, extra))


def _internal(request_id: str) -> GatewayError:
    return GatewayError(f"The gateway hit an internal error (request id {request_id}).",
                        code="internal_error")


def _served_by(target: Target, attempts: Attempts) -> RawHeaders:
    """After the rate-limit headers (whose names never clash with these)."""
    return [
        (b"x-gateway-provider", target.provider.name.encode("latin-1")),
        (b"x-gateway-upstream-model", target.upstream_model.encode("latin-1")),
        (b"x-gateway-attempts", attempts.header().encode("latin-1")),
    ]
