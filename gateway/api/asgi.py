"""Raw ASGI plumbing for the hot path: request headers, bodies, JSON and event-stream
responses (gateway/core/pipeline.py says why the hot path is raw ASGI)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterable

from starlette.types import Message, Receive, Scope, Send

from gateway.errors import GatewayError, InvalidRequest
from gateway.serving import HeadWithBody

_MAX_ID_LENGTH = 128
_JSON = (b"content-type", b"application/json")
_SSE = (b"content-type", b"text/event-stream")
_NO_CACHE = (b"cache-control", b"no-cache")

RawHeaders = list[tuple[bytes, bytes]]


class RequestHeaders:
    """The few request headers the hot path reads, found in one pass."""

    __slots__ = ("api_key", "authorization", "content_length", "pinned", "request_id",
                 "traceparent")

    def __init__(self, scope: Scope, new_id: Callable[[], str]) -> None:
        self.authorization: str | None = None
        self.api_key: str | None = None
        self.content_length: int | None = None
        self.pinned: str | None = None
        self.traceparent: str | None = None  # W3C trace context (used when tracing is on)
        request_id: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"content-length":
                self.content_length = int(value) if value.isdigit() else None
            elif name == b"x-request-id":
                request_id = client_request_id(value)
            elif name == b"x-gateway-provider":
                self.pinned = value.decode("latin-1")
            elif name == b"x-api-key":
                self.api_key = value.decode("latin-1")
            elif name == b"traceparent":
                self.traceparent = value.decode("latin-1")
        self.request_id = request_id or new_id()


def client_request_id(value: bytes) -> str | None:
    """The client's own `x-request-id`, kept when usable: cut to 128 bytes, ASCII only."""
    value = value[:_MAX_ID_LENGTH]
    return value.decode() if value and value.isascii() else None


class RequestIds:
    """Unique request ids without uuid4's cost per request: a random per-process prefix and a
    counter (`3f9c1a2b7d4e-000042`)."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter):06d}"


async def read_body(receive: Receive, declared: int | None, limit: int) -> bytes:
    """The whole request body, refused with 413 as soon as it exceeds `limit` bytes."""
    if declared is not None and declared > limit:
        raise _too_large(limit)
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return bytes(body)
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> GatewayError:
    return InvalidRequest(
        f"The request body is larger than this gateway's limit of {limit} bytes.",
        status=413, code="request_too_large",
    )


def header_list(request_id: str, headers: dict[str, str]) -> RawHeaders:
    out = [(b"x-request-id", request_id.encode())]
    out.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    return out


async def send_json(send: Send, status: int, body: bytes, headers: RawHeaders) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body})


async def send_whole_event_stream(
    send: Send, body: bytes, headers: Iterable[tuple[bytes, bytes]],
    content_type: bytes = _SSE[1],
) -> None:
    """An event stream already complete: headers and every event in one write each."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type), _NO_CACHE, *headers]})
    await send({"type": "http.response.body", "body": body})


def direct_body_writer(send: Send) -> Callable[[bytes], bool] | None:
    """The server's synchronous body writer behind `send` (`HeadWithBody.write_part`), when
    `send` is this gateway's own response cycle unwrapped; None under any other server or
    with a middleware around `send` (CORS), where a stream goes through `send` alone."""
    cycle = getattr(send, "__self__", None)
    return cycle.write_part if isinstance(cycle, HeadWithBody) else None


async def send_event_stream(
    scope: Scope, receive: Receive, send: Send, chunks: AsyncIterator[bytes],
    headers: Iterable[tuple[bytes, bytes]], content_type: bytes = _SSE[1],
    on_cut: Callable[[], bytes | None] | None = None,
) -> None:
    """Relay `chunks` as a streamed body (SSE, or NDJSON for Ollama's API). A client that
    hangs up cancels the relay (and so the upstream request): a watcher on `receive` cancels
    this task on `http.disconnect`. Any other cancellation asks `on_cut` for the bytes that
    end the stream (a shutdown's error event); None lets the cancellation go on."""
    task = asyncio.current_task()
    assert task is not None
    state = {"finished": False, "hung_up": False, "started": False}

    def on_message(done: asyncio.Future[Message]) -> None:
        if done.cancelled() or done.exception() is not None or state["finished"]:
            return
        if done.result()["type"] == "http.disconnect":
            state["hung_up"] = True
            task.cancel()

    watcher = asyncio.ensure_future(receive())
    watcher.add_done_callback(on_message)
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), _NO_CACHE, *headers]})
        state["started"] = True
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        state["finished"] = True
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if state["hung_up"]:
            task.uncancel()
            return
        tail = on_cut() if on_cut is not None and state["started"] else None
        if tail is None:
            raise
        state["finished"] = True
        await send({"type": "http.response.body", "body": tail})
    finally:
        state["finished"] = True
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await chunks.aclose()  # type: ignore[attr-defined]
