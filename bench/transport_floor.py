"""Floor variants that differ only in the upstream HTTP client (bench/transport.py runs them).

The same bare ASGI forwarder as bench/raw_forwarder.py; CLIENT picks how it reaches the
upstream:
  aiohttp          the raw forwarder's client, as it is
  aiohttp-timeout  plus the gateway's ClientTimeout(total, sock_connect, sock_read)
  aiohttp-lean     plus the timeouts, with a prebuilt URL and CIMultiDict (the gateway's way)
  pyreqwest        pyreqwest's async Client (Rust, hyper), streamed bodies via read_chunk()
  aiosonic         aiosonic's HTTPClient
  proto            a minimal HTTP/1.1 keep-alive client: asyncio.Protocol + httptools
  proto-timeout    the same with a total deadline and a read-gap timer
  http1            the gateway's own client (gateway/http1.py), with the gateway's timeouts
Run as: CLIENT=proto UPSTREAM_URL=... uvicorn --factory bench.transport_floor:create_app ...
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httptools

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench",
           "User-Agent": "switchyard/bench"}
TOTAL, CONNECT, READ = 1800.0, 10.0, 660.0


class Upstream:
    """One client: `post` returns (status, content type, body chunks)."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def post(self, body: bytes) -> tuple[int, bytes, AsyncIterator[bytes]]:
        raise NotImplementedError


class Aiohttp(Upstream):
    def __init__(self, url: str, timeout: bool, lean: bool) -> None:
        import aiohttp
        from multidict import CIMultiDict, CIMultiDictProxy
        from yarl import URL

        self.aiohttp = aiohttp
        self.url: Any = URL(url) if lean else url
        self.headers: Any = CIMultiDictProxy(CIMultiDict(HEADERS)) if lean else HEADERS
        self.timeout = (aiohttp.ClientTimeout(total=TOTAL, sock_connect=CONNECT, sock_read=READ)
                        if timeout else aiohttp.helpers.sentinel)

    async def start(self) -> None:
        aiohttp = self.aiohttp
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=300)
        self.session = aiohttp.ClientSession(connector=connector,
                                             cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        await self.session.close()

    async def post(self, body: bytes) -> tuple[int, bytes, AsyncIterator[bytes]]:
        resp = await self.session.post(self.url, data=body, headers=self.headers,
                                       timeout=self.timeout)
        ctype = resp.headers.get("Content-Type", "application/json").encode()
        return resp.status, ctype, self._body(resp, ctype.startswith(b"text/event-stream"))

    @staticmethod
    async def _body(resp: Any, stream: bool) -> AsyncIterator[bytes]:
        try:
            if stream:
                async for chunk in resp.content.iter_any():
                    yield chunk
            else:
                yield await resp.read()
        finally:
            resp.release()


class Pyreqwest(Upstream):
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        from datetime import timedelta

        from pyreqwest.client import ClientBuilder

        self.client = (ClientBuilder().default_headers(HEADERS)
                       .connect_timeout(timedelta(seconds=CONNECT))
                       .read_timeout(timedelta(seconds=READ))
                       .timeout(timedelta(seconds=TOTAL)).build())

    async def close(self) -> None:
        await self.client.close()

    async def post(self, body: bytes) -> tuple[int, bytes, AsyncIterator[bytes]]:
        # A buffer limit of 1 byte hands each chunk over as it arrives; the default (64 KiB)
        # holds even the headers back until that much body came (seconds, for a slow stream).
        request = (self.client.post(self.url).body_bytes(body).streamed_read_buffer_limit(1)
                   .build_streamed())
        resp = await request.__aenter__()
        ctype = (resp.get_header("content-type") or "application/json").encode()
        return resp.status, ctype, self._body(request, resp)

    @staticmethod
    async def _body(request: Any, resp: Any) -> AsyncIterator[bytes]:
        try:
            reader = resp.body_reader
            while (chunk := await reader.read_chunk()) is not None:
                yield bytes(chunk)
        finally:
            await request.__aexit__(None, None, None)


class Aiosonic(Upstream):
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        import aiosonic
        from aiosonic.pools import PoolConfig
        from aiosonic.timeout import Timeouts

        timeouts = Timeouts(sock_connect=CONNECT, sock_read=READ, request_timeout=TOTAL)
        connector = aiosonic.TCPConnector(
            pool_configs={":default": PoolConfig(size=1000, max_conn_requests=None)},
            timeouts=timeouts)
        self.client = aiosonic.HTTPClient(connector=connector)

    async def close(self) -> None:
        await self.client.aclose()

    async def post(self, body: bytes) -> tuple[int, bytes, AsyncIterator[bytes]]:
        resp = await self.client.request(self.url, "POST", headers=HEADERS, data=body,
                                         stream=True)
        ctype = (resp.headers.get("content-type") or "application/json").encode()
        return resp.status_code, ctype, self._body(resp)

    @staticmethod
    async def _body(resp: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.read_chunks():
                yield chunk
        finally:
            await resp.aclose()


class _Conn(asyncio.Protocol):
    """One keep-alive connection; parses responses with httptools as bytes arrive."""

    def __init__(self, pool: list[_Conn], timeouts: bool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.chunks: list[bytes] = []
        self.done = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.timeouts = timeouts
        self.reads = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self in self.pool:
            self.pool.remove(self)
        if not self.done:
            self._fail(exc or ConnectionResetError("closed"))

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self._wake()
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        # Asked here: once feed_data returns, llhttp has moved on and answers False.
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True
        self._wake()

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        if not self.timeouts:
            await self.waiter
            return
        # The gap timer: armed per wait (not per read); fires only if no byte came since.
        loop = asyncio.get_running_loop()
        handle = loop.call_at(loop.time() + READ, self._gap, self.reads)
        try:
            await self.waiter
        finally:
            handle.cancel()

    def _gap(self, reads: int) -> None:
        if reads == self.reads:
            self._fail(TimeoutError())

    def begin(self, request: bytes) -> None:
        self.headers, self.status, self.chunks, self.done = [], 0, [], False
        assert self.transport is not None
        self.transport.write(request)


class Proto(Upstream):
    def __init__(self, url: str, timeouts: bool) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}",
                 *(f"{k}: {v}" for k, v in HEADERS.items()), "Content-Length: "]
        self.head = "\r\n".join(lines).encode()
        self.pool: list[_Conn] = []
        self.timeouts = timeouts

    async def close(self) -> None:
        for conn in list(self.pool):
            if conn.transport is not None:
                conn.transport.close()

    async def _connect(self) -> _Conn:
        while self.pool:
            conn = self.pool.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Conn(self.pool, self.timeouts),
                                               self.host, self.port)
        return conn

    async def post(self, body: bytes) -> tuple[int, bytes, AsyncIterator[bytes]]:
        conn = await self._connect()
        conn.begin(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))
        deadline = None
        if self.timeouts:
            loop = asyncio.get_running_loop()
            deadline = loop.call_at(loop.time() + TOTAL, conn._fail, TimeoutError())
        while not conn.status and conn.error is None:
            await conn.wait()
        if conn.error is not None:
            raise conn.error
        ctype = b"application/json"
        for name, value in conn.headers:
            if name.lower() == b"content-type":
                ctype = value
        return conn.status, ctype, self._body(conn, deadline)

    async def _body(self, conn: _Conn, deadline: asyncio.TimerHandle | None
                    ) -> AsyncIterator[bytes]:
        try:
            while True:
                if conn.chunks:
                    chunks, conn.chunks = conn.chunks, []
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    continue
                if conn.done:
                    break
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
        finally:
            if deadline is not None:
                deadline.cancel()
            if conn.done and conn.keep_alive and conn.transport is not None:
                self.pool.append(conn)
            elif conn.transport is not None:
                conn.transport.close()


class Http1(Upstream):
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        from gateway.http1 import Endpoint, Timeouts

        self.endpoint = Endpoint(self.url, HEADERS, Timeouts(CONNECT, READ, TOTAL), None)

    async def close(self) -> None:
        self.endpoint.close()

    async def post(self, body: bytes) -> tuple[int, bytes, AsyncIterator[bytes]]:
        resp = await self.endpoint.post(body)
        ctype = b"application/json"
        for name, value in resp.raw_headers:
            if name.lower() == b"content-type":
                ctype = value
        return resp.status, ctype, self._body(resp)

    @staticmethod
    async def _body(resp: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.chunks():
                yield chunk
        finally:
            resp.release()


class Forwarder:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.upstream.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.upstream.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await self._forward(receive, send)

    async def _forward(self, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, ctype, chunks = await self.upstream.post(body)
        start = {"type": "http.response.start", "status": status}
        if ctype.startswith(b"text/event-stream"):
            await send({**start, "headers": [(b"content-type", ctype)]})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            data = b"".join([c async for c in chunks])
            length = str(len(data)).encode()
            headers = [(b"content-type", ctype), (b"content-length", length)]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": data})


def create_app(client: str | None = None) -> Forwarder:
    url, client = os.environ["UPSTREAM_URL"], client or os.environ.get("CLIENT", "aiohttp")
    upstreams: dict[str, Callable[[], Upstream]] = {
        "aiohttp": lambda: Aiohttp(url, timeout=False, lean=False),
        "aiohttp-timeout": lambda: Aiohttp(url, timeout=True, lean=False),
        "aiohttp-lean": lambda: Aiohttp(url, timeout=True, lean=True),
        "pyreqwest": lambda: Pyreqwest(url),
        "aiosonic": lambda: Aiosonic(url),
        "proto": lambda: Proto(url, timeouts=False),
        "proto-timeout": lambda: Proto(url, timeouts=True),
        "http1": lambda: Http1(url),
    }
    return Forwarder(upstreams[client]())


# One factory per client, for harnesses that pick the app by name (bench/transport_paced.py).
def create_aiohttp() -> Forwarder:
    return create_app("aiohttp-timeout")


def create_pyreqwest() -> Forwarder:
    return create_app("pyreqwest")


def create_proto() -> Forwarder:
    return create_app("proto-timeout")


def create_http1_app() -> Forwarder:
    """The floor on gateway/http1.py (bench/run.py's `raw-http1` target)."""
    return create_app("http1")
