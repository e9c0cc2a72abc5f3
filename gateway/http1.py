"""A small HTTP/1.1 client for the upstream hot path: POST, keep-alive pool, streamed bodies.

aiohttp's client cost ~90 µs of CPU a request here (timeout handles, payload wrapping, URL and
header building, its stream reader); this one writes a prebuilt request head in one call and
parses the answer with httptools (llhttp) straight into the `Response` the caller reads, for
the same work measured in bench/RESULTS-transport.md. It does only what the gateway's upstream
calls need: POST with a bytes body to one origin per `Endpoint`, content-length, chunked or
close-delimited answers, gzip/deflate, TLS, three timeouts (connect; first byte and every gap
after it; total) and one retry when a kept-alive connection turns out closed before any byte
of the answer. Failures are this module's exceptions (and `TimeoutError`); gateway/upstream.py
maps them to `UpstreamError`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

# Buffered answer bytes at which reading pauses until the caller catches up, and resumes.
_HIGH_WATER = 1 << 20
_LOW_WATER = 1 << 16
# An idle pooled connection older than this is closed instead of reused: servers drop idle
# connections after a minute or so, and a request written into a dying one is lost.
_IDLE_SECONDS = 50.0
# How long a host's resolved addresses are reused for new connections (a burst of new streams
# would otherwise resolve the name once per connection).
_DNS_SECONDS = 300.0


class HTTPClientError(Exception):
    """A transport failure; the subclass says where it happened."""


class ConnectFailed(HTTPClientError):
    """No connection could be made (refused, DNS, TLS handshake or certificate)."""


class Disconnected(HTTPClientError):
    """The connection ended or broke before the answer's head was complete."""


class BodyCut(HTTPClientError):
    """The answer's body ended early or could not be decoded."""


class Timeouts:
    """Seconds: to connect, to wait for each read (the first byte and every gap), in total."""

    __slots__ = ("connect", "read", "total")

    def __init__(self, connect: float, read: float, total: float) -> None:
        self.connect, self.read, self.total = connect, read, total


def _check_header(name: str, value: str) -> str:
    line = f"{name}: {value}"
    if any(c in line for c in "\r\n\0") or ":" in name or not name.strip():
        raise ValueError(f"header {name!r} cannot be sent")
    return line


class Endpoint:
    """One URL to POST to, with its headers prebuilt into the request head, and its pool."""

    def __init__(self, url: str, headers: dict[str, str], timeouts: Timeouts,
                 ssl_context: ssl.SSLContext | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.timeouts = timeouts
        self.ssl_context = ssl_context if self.tls else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]  # never send userinfo
        lines = [f"POST {path} HTTP/1.1", _check_header("Host", host),
                 *(_check_header(k, v) for k, v in headers.items()
                   if k.lower() not in ("host", "content-length", "accept-encoding",
                                        "transfer-encoding", "connection")),
                 "Accept-Encoding: gzip, deflate", "Content-Length: "]
        self._head = "\r\n".join(lines).encode("latin-1")
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self._closed = False
        self._addresses: asyncio.Future[list[str]] | None = None
        self._resolved_at = 0.0

    async def post(self, body: bytes, extra_headers: dict[str, str] | None = None) -> Response:
        """Send the request; returns once the answer's head arrived (its body is read from the
        `Response`). A reused connection found closed before any answer byte is retried once
        on a new one: the upstream dropped it while idle, so it never saw the request."""
        extra = b""
        if extra_headers:
            extra = "".join(_check_header(k, v) + "\r\n"
                            for k, v in extra_headers.items()).encode("latin-1")
        request = b"%s%d\r\n%s\r\n%s" % (self._head, len(body), extra, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.total
        conn = self._pooled(loop.time())
        if conn is not None:
            try:
                return await conn.send(request, deadline)
            except Disconnected:
                if conn.got_bytes:
                    raise
        conn = await self._connect(loop, deadline)
        return await conn.send(request, deadline)

    def _pooled(self, now: float) -> Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.reusable and now - conn.idle_since < _IDLE_SECONDS:
                return conn
            conn.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Connection:
        if self._closed:
            raise ConnectFailed("the client is closed")
        error: Exception | None = None
        async with asyncio.timeout_at(min(deadline, loop.time() + self.timeouts.connect)):
            try:
                addresses = await self._resolve(loop)
            except OSError as exc:
                raise ConnectFailed(f"cannot resolve {self.host}: {exc}") from exc
            for address in addresses:
                try:
                    _, conn = await loop.create_connection(
                        lambda: Connection(self), address, self.port, ssl=self.ssl_context,
                        server_hostname=self.host if self.tls else None)
                except OSError as exc:  # refused, unreachable, TLS handshake or certificate
                    error = exc
                    continue
                self._open.add(conn)
                return conn
        self._addresses = None  # every address failed: resolve again next time
        raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {error}")

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> list[str]:
        """The host's addresses, resolved once per _DNS_SECONDS and shared by concurrent
        connects."""
        future = self._addresses
        if future is None or (future.done() and (
                future.exception() is not None
                or loop.time() - self._resolved_at > _DNS_SECONDS)):
            future = self._addresses = loop.create_future()
            self._resolved_at = loop.time()
            try:
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            except BaseException as exc:  # the waiters must not wait for a cancelled lookup
                self._addresses = None
                future.set_exception(exc if isinstance(exc, OSError)
                                     else OSError(f"the lookup of {self.host} was interrupted"))
                future.exception()  # retrieved: no "never retrieved" warning
                raise
            future.set_result(list(dict.fromkeys(str(info[4][0]) for info in infos)))
        return await asyncio.shield(future)

    def idle(self, conn: Connection) -> None:
        """A connection whose answer is complete goes back to the pool."""
        if self._closed:
            conn.close()
        else:
            self._idle.append(conn)

    def forget(self, conn: Connection) -> None:
        self._open.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    def close(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._idle.clear()


class Connection(asyncio.Protocol):
    """One kept-alive connection; it parses what arrives into its current `Response`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.got_bytes = False  # any byte of the current answer
        self.idle_since = 0.0
        self._paused = False
        self._last_read = 0.0
        # Made in the loop by create_connection. Kept: in Python 3.11 every
        # asyncio.get_running_loop() is a getpid() syscall.
        self.loop = asyncio.get_running_loop()
        self._time = self.loop.time
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None  # the read gap's and the deadline's

    @property
    def reusable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    async def send(self, request: bytes, deadline: float) -> Response:
        self.got_bytes = False
        transport = self.transport
        if transport is None or transport.is_closing():
            raise Disconnected("the connection was closed")
        response = self.response = Response(self)
        loop = self.loop
        self._last_read = now = loop.time()
        self._deadline = deadline
        self._timer = loop.call_at(min(now + self.endpoint.timeouts.read, deadline),
                                   self._check_time)
        transport.write(request)
        try:
            while not response.status:
                await response.wait()
        except BaseException:
            self.close()  # cancelled or failed before the head: nobody will read this answer
            raise
        return response

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()  # connection_lost follows and fails the current answer

    # ---- protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        reading = self.response
        if reading is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.got_bytes = True
        self._last_read = self._time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response = self.response
            if response is None:  # bytes after the answer's end
                self.close()
            else:
                self._fail(BodyCut(f"bad body framing: {exc}") if response.status
                           else Disconnected(f"not an HTTP answer: {exc}"))
        if reading._held:
            reading.push_held()  # the read's body, parsed: to the sink in one call

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides what the end means

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.endpoint.forget(self)
        response = self.response
        if response is not None:
            if response.status and not response.framed:
                self.on_message_complete()  # a close-delimited body ends here
            elif response.status:
                self._fail(BodyCut("the connection closed before the body was complete"))
            else:
                self._fail(Disconnected("the connection closed before the answer"))
        self._stop_timers()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self._last_read = self._time()
            self.transport.resume_reading()

    # ---- parser callbacks (httptools) --------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        response.start(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        if response._sink is not None and response._decoder is None:
            response._held.append(body)  # `Response.feed`'s first case, a call saved per event
            return
        try:
            response.feed(body)
        except zlib.error as exc:
            self._fail(BodyCut(f"cannot decode the body: {exc}"))

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        self.response = None
        self._stop_timers()
        try:
            response.finish()
        except zlib.error as exc:
            response.fail(BodyCut(f"cannot decode the body: {exc}"))
        if self.reusable and response.framed and self.parser.should_keep_alive():
            self.idle_since = self._time()
            self.resume()
            self.endpoint.idle(self)
        else:
            self.close()

    # ---- failures and timers -----------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        response = self.response
        self.response = None
        self._stop_timers()
        if response is not None:
            response.fail(exc)
        self.close()

    def _stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_time(self) -> None:
        """One timer per answer rather than one per read, for both limits: it fires, fails
        the answer past its deadline or after a gap of no bytes, or re-arms for whichever
        comes first. A paused connection waits for its reader, not for the upstream, so its
        gap does not count."""
        loop = self.loop
        now = loop.time()
        read = self.endpoint.timeouts.read
        self._timer = None
        if now >= self._deadline:
            self._fail(TimeoutError("the upstream did not finish in time"))
        elif not self._paused and now - self._last_read >= read:
            self._fail(TimeoutError("no byte from the upstream in time"))
        else:
            gap_end = (now if self._paused else self._last_read) + read
            self._timer = loop.call_at(min(gap_end, self._deadline), self._check_time)


class Response:
    """An answer: its status and headers once `Endpoint.post` returns; its body as it comes.
    Reading it to the end returns the connection to the pool; `close` (or `release` before
    the end) drops the connection, which stops the upstream's work on it."""

    __slots__ = ("_buffered", "_chunks", "_conn", "_decoder", "_done", "_error", "_held",
                 "_loop", "_sink", "_waiter", "framed", "raw_headers", "status")

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self._loop = conn.loop
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # content-length or chunked: the body's end is not the close
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._sink: Callable[[bytes], bool] | None = None
        self._held: list[bytes] = []  # the current read's body pieces, for the sink
        self._decoder: zlib._Decompress | None = None

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """Built on demand: only error answers need them (Retry-After)."""
        return CIMultiDictProxy(CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw_headers))

    @property
    def closed(self) -> bool:
        return self._conn is None

    def at_eof(self) -> bool:
        """The whole body arrived and was read."""
        return self._done and self._error is None and not self._chunks

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, or (with `limit`) at least its first `limit` bytes if it has
        them; raises the transport's failure."""
        while not self._done and (limit is None or self._buffered < limit):
            if self._error is not None:
                raise self._error
            await self.wait()
        if self._error is not None and limit is None:
            raise self._error
        data = b"".join(self._take())
        return data if limit is None else data[:limit]

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: what came since the last step, joined."""
        while data := await self.next_read():
            yield data

    async def next_read(self) -> bytes:
        """What arrived since the last call, joined (waiting for it); b"" at the body's end.
        Raises the transport's failure."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            await self.wait()
        pending = self._take()
        return pending[0] if len(pending) == 1 else b"".join(pending)

    async def push_to(self, sink: Callable[[bytes], bool]) -> None:
        """Hand each read to `sink` in the connection's own callback, with no task switch,
        until the sink returns False (it took that read but wants its caller back), the body
        ends or fails. Then return; what is left is `next_read`'s. A stream's relay spends
        most of its time here: per read, the wake-up of a waiting task and every frame
        between the socket and the relay cost more than the relaying itself."""
        if self._chunks or self._done or self._error is not None:
            return
        self._sink = sink
        self._waiter = waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
            self._sink = None

    def release(self) -> None:
        """Done with the answer: a finished one's connection is already pooled; an
        unfinished one's is closed (its rest would be garbage to the next request)."""
        self.close()

    def close(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.close()

    # ---- fed by the connection ---------------------------------------------------------

    def start(self, status: int) -> None:
        encoding = b""
        for name, value in self.raw_headers:
            lname = name.lower()
            if lname == b"content-length":
                self.framed = True
            elif lname == b"transfer-encoding":
                self.framed = self.framed or value.strip().lower().endswith(b"chunked")
            elif lname == b"content-encoding":
                encoding = value.strip().lower()
        if encoding in (b"gzip", b"x-gzip", b"deflate"):
            # 32 + MAX_WBITS accepts the gzip and zlib wrappings alike.
            self._decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)
        self.status = status
        self._wake()

    def feed(self, data: bytes) -> None:
        if self._decoder is not None:
            data = self._decoder.decompress(data)
            if not data:
                return
        if self._sink is not None:  # set only while nothing is buffered (`push_to`)
            self._held.append(data)  # the sink gets the whole read at once (`push_held`)
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def push_held(self) -> None:
        """One read's body pieces (one per HTTP chunk) to the sink as one: a relay that fell
        behind finds several of the upstream's events in one read, and relaying them as one
        write to its client, rather than one write each, is what lets it catch up."""
        held = self._held
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        sink = self._sink
        assert sink is not None  # pieces are held only while a sink is set
        if not sink(data):  # taken, but the sink wants its caller back
            self._sink = None
            self._wake()

    def finish(self) -> None:
        self.push_held()  # the read that ends the body: its events before the end
        self._conn = None
        self._done = True
        decoder, self._decoder = self._decoder, None
        try:
            if decoder is not None:
                if tail := decoder.flush():
                    self._chunks.append(tail)
                    self._buffered += len(tail)
                if not decoder.eof:
                    raise zlib.error("the compressed body ended early")
        finally:
            self._wake()

    def fail(self, exc: BaseException) -> None:
        self.push_held()
        self._conn = None
        if self._error is None:
            self._error = exc
        self._wake()

    async def wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take(self) -> list[bytes]:
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        conn = self._conn
        if conn is not None and conn._paused:
            conn.resume()
        return chunks
