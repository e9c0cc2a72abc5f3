"""Run a real gateway (uvicorn, uvloop, httptools) on a loopback port in a background thread.

Tests talk to it over real HTTP with the real OpenAI SDK; the thread keeps the test process in
control of its lifetime and lets tests read the usage events it recorded.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from gateway.serving import GuardedHttpTools
from gateway.usage import UsageEvent


class CollectingSink:
    """Usage sink that keeps every event, for assertions."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []
        self._lock = threading.Lock()

    def record(self, event: UsageEvent) -> None:
        with self._lock:
            self.events.append(event)


class GatewayServer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # IPPROTO_TCP explicitly: with protocol 0 the loop never sets TCP_NODELAY on accepted
        # connections, and every response then waits ~40 ms for a delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, loop="uvloop", http=GuardedHttpTools, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> Self:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("gateway failed to start")
            threading.Event().wait(0.01)
        raise RuntimeError("gateway did not start in 5 s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
