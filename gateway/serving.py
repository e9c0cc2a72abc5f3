"""The HTTP protocol the gateway is served with: uvicorn's httptools protocol plus a
header-read timeout, a connection limit, and a response head written with its body.

uvicorn times out idle keep-alive connections but not a connection whose request headers
never finish: 20,000 idle sockets held that way exhausted the file descriptors and new clients
got nothing, with nothing logged. Here a connection must finish its headers within
`connections.header_timeout` seconds of connecting (or of its previous response), and beyond
`connections.max_connections` open connections new ones are answered 503 and closed. Both are
logged, at most once per `_LOG_EVERY` seconds with the counts since the last line.

The settings come from the app's own config (found through the ASGI wrappers), so this class
works for one process and for spawned workers alike: `gateway serve` passes it as uvicorn's
`http`.

Each response's head (status line and headers) goes out in the same `write()` as the first
part of its body when that follows in the same event-loop tick, as it does for every answer
the hot path sends: one syscall (and one TCP segment) per answer instead of two, which was
most of uvicorn's `send` in a profile (bench/RESULTS-pipeline.md). A head whose body is not
sent in that tick is written at the end of it. The headers are still validated as uvicorn
validates them, with one regex search over all names and one over all values (the patterns
match single characters, so that is the same check) instead of two searches per header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

log = logging.getLogger("gateway")

_LOG_EVERY = 10.0
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
         b"content-length: 33\r\nconnection: close\r\nretry-after: 1\r\n\r\n"
         b"Too many connections; try again.\n")


class ConnectionGuard:
    """The limits, and throttled logging of what they turned away."""

    def __init__(self, header_timeout: float, max_connections: int) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.timed_out = 0
        self.refused = 0
        self._logged_at = 0.0

    def note(self, what: str) -> None:
        if what == "timeout":
            self.timed_out += 1
        else:
            self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY:
            self._logged_at = now
            log.warning("connections: %d closed for not sending headers within %g s, %d refused "
                        "over the limit of %d (totals)", self.timed_out, self.header_timeout,
                        self.refused, self.max_connections)


def guard_of(app: Any) -> ConnectionGuard | None:
    """The gateway app's guard, through uvicorn's middleware wrappers (`.app`)."""
    for _ in range(10):
        guard = getattr(app, "connection_guard", None)
        if isinstance(guard, ConnectionGuard):
            return guard
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class GuardedHttpTools(HttpToolsProtocol):
    _guard: ConnectionGuard | None
    _header_timer: asyncio.TimerHandle | None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = None
        self._guard = guard = guard_of(self.app)
        if guard is None:
            return
        if len(self.connections) > guard.max_connections:
            guard.note("refused")
            transport.write(_BUSY)
            transport.close()
            return
        self._start_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:  # made just now; its task has not run yet
            cycle.__class__ = HeadWithBody

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        guard = self._guard
        if guard is not None and guard.header_timeout > 0:
            self._header_timer = self.loop.call_later(guard.header_timeout, self._too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._guard is not None:
            self._guard.note("timeout")
        if not self.transport.is_closing():
            self.transport.close()


class HeadWithBody(RequestResponseCycle):
    """uvicorn's request/response cycle, its response head held until the first body part
    (or the end of the tick) and written with it. uvicorn makes the cycle; the protocol
    switches its class before the app runs (the attributes are uvicorn's own)."""

    _head: bytes | None = None

    def send(self, message: Any) -> Coroutine[Any, Any, None]:
        """Not a coroutine itself: a stream's body parts go to uvicorn's `send` with no frame
        of ours in between."""
        if self._head is not None:
            return self._send_after_head(message)
        if (self.response_started or message["type"] != "http.response.start"
                or self.access_log or self.scope["method"] == "HEAD"):
            return RequestResponseCycle.send(self, message)  # uvicorn's own way
        return self._hold_head(message)

    async def _hold_head(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        self.response_started = True
        self.waiting_for_100_continue = False
        self._head = self._build_head(message["status"],
                                      [*self.default_headers, *message.get("headers", ())])
        asyncio.get_running_loop().call_soon(self._flush_head)

    async def _send_after_head(self, message: Any) -> None:
        """The first message after the start: a body part goes out in one write with the
        head, framed and accounted as uvicorn's `send` does it."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()  # the flush may have run meanwhile
        head, self._head = self._head, None
        if head is None or self.disconnected or message["type"] != "http.response.body":
            if head is not None and not self.disconnected:
                self.transport.write(head)
            await super().send(message)
            return
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.chunked_encoding:
            parts = [head, b"%x\r\n" % len(body), body, b"\r\n"] if body else [head]
            if not more_body:
                parts.append(b"0\r\n\r\n")
            self.transport.write(b"".join(parts))
        elif len(body) == self.expected_content_length or (
                more_body and len(body) < self.expected_content_length):
            self.transport.write(head + body)
            self.expected_content_length -= len(body)
        else:  # longer or shorter than its content-length: uvicorn's own error
            self.transport.write(head)
            await super().send(message)
            return
        if not more_body:
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def write_part(self, body: bytes) -> bool:
        """A streamed body part written now, with no await: the relay calls it from the
        upstream connection's callback. False, with nothing written, when the part must go
        through `send` instead: the head not yet out, writes paused for flow control (`send`
        waits for them), the client gone, or a body that is not chunked."""
        if (self._head is not None or not self.response_started or self.response_complete
                or self.flow.write_paused or self.disconnected
                or self.chunked_encoding is not True or self.scope["method"] == "HEAD"):
            return False
        self.transport.write(b"%x\r\n%s\r\n" % (len(body), body))
        return True

    def _flush_head(self) -> None:
        head, self._head = self._head, None
        # A transport closed meanwhile (the app failed after its start: uvicorn closes the
        # connection) takes no more writes.
        if head is not None and not self.disconnected and not self.transport.is_closing():
            self.transport.write(head)

    def _build_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """uvicorn's `send` for `http.response.start`, less its access log (the gateway turns
        it off and writes its own) and with the validation in two searches."""
        if HEADER_RE.search(b"".join([name for name, _ in headers])):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"".join([value for _, value in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if self.chunked_encoding is None and status not in (204, 304):
            self.chunked_encoding = True  # neither content-length nor transfer-encoding
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)

