"""The HTTP protocol the gateway is served with: uvicorn's httptools protocol plus a
header-read timeout and a connection limit.

uvicorn times out idle keep-alive connections but not a connection whose request headers
never finish: 20,000 idle sockets held that way exhausted the file descriptors and new clients
got nothing, with nothing logged. Here a connection must finish its headers within
`connections.header_timeout` seconds of connecting (or of its previous response), and beyond
`connections.max_connections` open connections new ones are answered 503 and closed. Both are
logged, at most once per `_LOG_EVERY` seconds with the counts since the last line.

The settings come from the app's own config (found through the ASGI wrappers), so this class
works for one process and for spawned workers alike: `gateway serve` passes it as uvicorn's
`http`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
