"""gateway/http1.py against scripted servers that send exact bytes: framing, reuse, faults."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.http1 import (
    BodyCut,
    ConnectFailed,
    Disconnected,
    Endpoint,
    Response,
    Timeouts,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEADERS = {"User-Agent": "switchyard/test", "Authorization": "Bearer k",
           "Content-Type": "application/json"}
SLOW = Timeouts(connect=5, read=5, total=10)


class Server:
    """A TCP server running `handler` per connection; counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def request(self, reader: asyncio.StreamReader) -> bytes:
        """Read one request (head and content-length body) and record it."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return body

    def url(self, scheme: str = "http") -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"{scheme}://127.0.0.1:{port}/v1/chat/completions"


async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None
                ) -> AsyncIterator[Server]:
    server = Server(handler)
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server
    finally:
        server.server.close()


def endpoint(server: Server, timeouts: Timeouts = SLOW) -> Endpoint:
    return Endpoint(server.url(), HEADERS, timeouts, None)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")


async def test_answers_are_read_and_the_connection_is_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await server.request(reader)
            writer.write(ok(b"echo " + body, b"Retry-After: 3\r\n"))

    async for server in serve(handler):
        ep = endpoint(server)
        for i in range(3):
            response = await ep.post(b"hello %d" % i, {"traceparent": "00-abc"})
            assert response.status == 200
            assert response.headers["retry-after"] == "3"
            assert await response.read() == b"echo hello %d" % i
            assert response.at_eof()
        assert server.connections == 1
        head = server.requests[0].split(b"\r\n\r\n")[0].decode()
        lines = head.split("\r\n")
        assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
        assert "Authorization: Bearer k" in lines and "traceparent: 00-abc" in lines
        assert "Accept-Encoding: gzip, deflate" in lines and "Content-Length: 7" in lines
        ep.close()


async def test_a_chunked_stream_is_handed_over_as_it_arrives() -> None:
    step = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: one\n\n"))
        await step.wait()
        writer.write(chunk(b"data: two\n\n") + b"0\r\n\r\n")
        await server.request(reader)  # the connection is reused after the stream's end
        writer.write(ok(b"again"))

    async for server in serve(handler):
        ep = endpoint(server)
        response = await ep.post(b"{}")
        chunks = response.chunks()
        assert await anext(chunks) == b"data: one\n\n"  # before the server sent the rest
        step.set()
        assert [c async for c in chunks] == [b"data: two\n\n"]
        assert response.at_eof()
        assert await (await ep.post(b"{}")).read() == b"again"
        assert server.connections == 1
        ep.close()


async def test_pushed_reads_go_to_the_sink_until_it_declines_then_are_read() -> None:
    """`push_to` hands each read to the sink in the connection's callback; a declined read
    was taken by the sink and wakes the caller, and later reads wait for `next_read`."""
    steps = [asyncio.Event() for _ in range(3)]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"one"))
        for step, part in zip(steps, (b"two", b"stop", b"after"), strict=True):
            await step.wait()
            writer.write(chunk(part))
        writer.write(b"0\r\n\r\n")

    async for server in serve(handler):
        ep = endpoint(server)
        response = await ep.post(b"{}")
        assert await response.next_read() == b"one"
        sunk: list[bytes] = []

        def sink(data: bytes, sunk: list[bytes] = sunk) -> bool:
            sunk.append(data)
            if data == b"two":
                steps[1].set()
            return data != b"stop"

        pushing = asyncio.ensure_future(response.push_to(sink))
        await asyncio.sleep(0)
        steps[0].set()
        await asyncio.wait_for(pushing, 5)
        assert sunk == [b"two", b"stop"]
        steps[2].set()
        assert await response.next_read() == b"after"  # pulled: the sink is gone
        assert await response.next_read() == b""
        assert sunk == [b"two", b"stop"] and response.at_eof()
        ep.close()


async def test_a_read_of_many_http_chunks_reaches_the_sink_once() -> None:
    """A read that holds several HTTP chunks (a relay that fell behind: the upstream's events
    queued in the socket) is one sink call with all of them, so the relay renders them as one
    write to its client; one write per HTTP chunk cost the most exactly when the relay was
    behind, and kept it behind. A read that also ends the body hands its events over before
    the end wakes the caller."""
    go = asyncio.Event()
    events = [b"data: %d\n\n" % i for i in range(5)]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(CHUNKED_HEAD)
        await go.wait()
        writer.write(b"".join(chunk(e) for e in events[:3]))  # one segment: one read
        await asyncio.sleep(0.05)
        writer.write(b"".join(chunk(e) for e in events[3:]) + b"0\r\n\r\n")

    async for server in serve(handler):
        ep = endpoint(server)
        response = await ep.post(b"{}")
        sunk: list[bytes] = []
        pushing = asyncio.ensure_future(
            response.push_to(lambda data, sunk=sunk: not sunk.append(data)))
        await asyncio.sleep(0)
        go.set()
        await asyncio.wait_for(pushing, 5)  # woken by the end
        assert sunk == [b"".join(events[:3]), b"".join(events[3:])]
        assert await response.next_read() == b"" and response.at_eof()
        ep.close()


async def test_push_to_returns_at_the_end_and_on_a_failure_and_at_once_with_reads_left(
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"one"))
        await asyncio.sleep(0.05)
        writer.write(chunk(b"two") + b"0\r\n\r\n")
        await server.request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"x"))
        await asyncio.sleep(0.05)
        writer.close()  # cut mid-body

    async for server in serve(handler):
        ep = endpoint(server)
        response = await ep.post(b"{}")
        if not response._chunks:  # "one" buffered: push_to leaves it to next_read
            await response.wait()
        await asyncio.wait_for(response.push_to(lambda data: True), 1)
        assert await response.next_read() == b"one"
        sunk: list[bytes] = []
        await asyncio.wait_for(response.push_to(lambda data, sunk=sunk: not sunk.append(data)),
                               5)
        assert sunk == [b"two"] and await response.next_read() == b""  # woken by the end
        cut = await ep.post(b"{}")
        assert await cut.next_read() == b"x"
        await asyncio.wait_for(cut.push_to(lambda data: True), 5)  # woken by the failure
        with pytest.raises(BodyCut):
            await cut.next_read()
        ep.close()


async def test_a_close_delimited_body_ends_at_the_close() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")

    async for server in serve(handler):
        ep = endpoint(server)
        assert await (await ep.post(b"{}")).read() == b"all of it"
        assert await (await ep.post(b"{}")).read() == b"all of it"  # a new connection
        assert server.connections == 2
        ep.close()


@pytest.mark.parametrize(("encoding", "compress"), [
    (b"gzip", gzip.compress), (b"deflate", zlib.compress)])
async def test_compressed_answers_are_decoded(encoding: bytes,
                                              compress: Callable[[bytes], bytes]) -> None:
    text = b"data: " + b"x" * 5000 + b"\n\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        packed = compress(text)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nTransfer-Encoding: chunked"
                     b"\r\n\r\n%s%s0\r\n\r\n" % (encoding, chunk(packed[:10]),
                                                 chunk(packed[10:])))

    async for server in serve(handler):
        ep = endpoint(server)
        assert await (await ep.post(b"{}")).read() == text
        ep.close()


async def test_a_corrupt_compressed_body_is_cut() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(ok(b"not gzip at all", b"Content-Encoding: gzip\r\n"))

    async for server in serve(handler):
        with pytest.raises(BodyCut):
            await (await endpoint(server).post(b"{}")).read()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this much",
    CHUNKED_HEAD + chunk(b"data: one\n\n"),
])
async def test_a_body_that_ends_early_is_cut_after_what_came(answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(answer)
        await writer.drain()

    async for server in serve(handler):
        response = await endpoint(server).post(b"{}")
        received = []
        with pytest.raises(BodyCut):
            async for piece in response.chunks():
                received.append(piece)
        assert received and not response.at_eof()


async def test_bad_chunk_framing_is_cut() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(CHUNKED_HEAD + b"zz\r\nnope\r\n")

    async for server in serve(handler):
        with pytest.raises(BodyCut):
            await (await endpoint(server).post(b"{}")).read()


@pytest.mark.parametrize("answer", [b"", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nCont"])
async def test_no_answer_or_not_http_is_a_disconnect(answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(answer)

    async for server in serve(handler):
        with pytest.raises(Disconnected):
            await endpoint(server).post(b"{}")
        assert len(server.requests) == 1  # a fresh connection is not retried


async def test_a_kept_alive_connection_closed_while_idle_is_not_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(ok(b"first"))
        await writer.drain()
        # then closes, as a server timing out an idle kept-alive connection does

    async for server in serve(handler):
        ep = endpoint(server)
        assert await (await ep.post(b"{}")).read() == b"first"
        await server.closed.wait()
        assert await (await ep.post(b"{}")).read() == b"first"
        assert server.connections == 2
        ep.close()


async def test_a_reused_connection_dropped_after_the_request_is_retried_only_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        if server.connections == 1:
            writer.write(ok(b"first"))
            await server.request(reader)  # then drop the second request unanswered
        # every later connection: read the request and drop it unanswered too

    async for server in serve(handler):
        ep = endpoint(server)
        assert await (await ep.post(b"{}")).read() == b"first"
        with pytest.raises(Disconnected):
            await ep.post(b"{}")
        assert len(server.requests) == 3  # the first, the dropped one, and one retry
        ep.close()


async def test_no_first_byte_in_time_is_a_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        await reader.read()  # until the client hangs up

    async for server in serve(handler):
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(TimeoutError):
            await endpoint(server, Timeouts(connect=5, read=0.2, total=10)).post(b"{}")
        assert 0.2 <= loop.time() - began < 3.0


async def test_a_gap_in_a_stream_is_a_timeout_but_steady_bytes_are_not() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(CHUNKED_HEAD)
        for _ in range(6):  # 1.2 s of bytes every 0.2 s: longer than the 1 s gap limit
            await asyncio.sleep(0.2)
            writer.write(chunk(b": keep-alive\n\n"))
        await reader.read()  # until the client hangs up

    async for server in serve(handler):
        response = await endpoint(server, Timeouts(connect=5, read=1.0, total=10)).post(b"{}")
        received = []
        with pytest.raises(TimeoutError):
            async for piece in response.chunks():
                received.append(piece)
        assert len(received) == 6


async def test_the_total_limit_holds_even_while_bytes_flow() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(CHUNKED_HEAD)
        for _ in range(50):
            await asyncio.sleep(0.05)
            writer.write(chunk(b": keep-alive\n\n"))

    async for server in serve(handler):
        loop = asyncio.get_running_loop()
        began = loop.time()
        response = await endpoint(server, Timeouts(connect=5, read=1, total=0.3)).post(b"{}")
        with pytest.raises(TimeoutError):
            await response.read()
        assert loop.time() - began < 2.0  # the stream would run 2.5 s


async def test_a_refused_connection_cannot_connect() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass

    async for server in serve(handler):
        url = server.url()
    assert server.server is not None
    await server.server.wait_closed()
    with pytest.raises(ConnectFailed):
        await Endpoint(url, HEADERS, SLOW, None).post(b"{}")


async def test_an_error_body_is_read_up_to_a_limit() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 100000\r\n\r\n" + b"e" * 5000)
        await reader.read()  # until the client hangs up

    async for server in serve(handler):
        response = await endpoint(server).post(b"{}")
        assert response.status == 503
        assert await response.read(1000) == b"e" * 1000
        response.release()  # unfinished: its connection is closed, not pooled
        assert response.closed
        await asyncio.wait_for(server.closed.wait(), 2)


async def test_closing_a_stream_closes_its_connection_at_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: one\n\n"))
        await reader.read()  # until the client hangs up

    async for server in serve(handler):
        ep = endpoint(server)
        response = await ep.post(b"{}")
        assert await anext(response.chunks()) == b"data: one\n\n"
        response.close()
        await asyncio.wait_for(server.closed.wait(), 2)
        assert ep._idle == []


async def test_a_large_body_passes_through_flow_control() -> None:
    body = bytes(range(256)) * 20_000  # ~5 MiB: reading pauses and resumes on the way

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(ok(body))
        await writer.drain()
        await server.request(reader)
        writer.write(ok(b"next"))

    async for server in serve(handler):
        ep = endpoint(server)
        response = await ep.post(b"{}")
        got = b""
        async for piece in response.chunks():
            got += piece
            await asyncio.sleep(0)
        assert got == body
        assert await (await ep.post(b"{}")).read() == b"next"
        assert server.connections == 1
        ep.close()


def test_headers_that_would_split_the_request_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        Endpoint("http://127.0.0.1:1/x", {"X-Bad": "a\r\nInjected: 1"}, SLOW, None)
    with pytest.raises(ValueError, match="not an http"):
        Endpoint("ftp://example.com/x", HEADERS, SLOW, None)


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and a client context trusting only its certificate."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_https_is_spoken_and_an_untrusted_certificate_cannot_connect(
        tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(ok(b"secret"))

    async for server in serve(handler, server_ctx):
        ep = Endpoint(server.url("https"), HEADERS, SLOW, client_ctx)
        assert await (await ep.post(b"{}")).read() == b"secret"
        ep.close()
        with pytest.raises(ConnectFailed):
            await Endpoint(server.url("https"), HEADERS, SLOW,
                           ssl.create_default_context()).post(b"{}")


def test_response_is_what_upstream_exports() -> None:
    from gateway.upstream import UpstreamResponse

    assert UpstreamResponse is Response


async def test_a_host_name_is_resolved_once_for_a_burst_of_new_connections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release, all_in = asyncio.Event(), asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        if len(server.requests) == 10:
            all_in.set()
        await release.wait()  # every request holds its connection: ten connections
        writer.write(ok(b"hi"))

    loop = asyncio.get_running_loop()
    lookups = []
    real = loop.getaddrinfo

    async def counting(*args: object, **kwargs: object) -> object:
        lookups.append(args[0])
        await asyncio.sleep(0.05)  # slow enough that every connect waits on the one lookup
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "getaddrinfo", counting)
    async for server in serve(handler):
        ep = Endpoint(server.url().replace("127.0.0.1", "localhost"), HEADERS, SLOW, None)
        posts = [asyncio.ensure_future(ep.post(b"{}")) for _ in range(10)]
        await asyncio.wait_for(all_in.wait(), 5)
        release.set()
        assert [await (await p).read() for p in posts] == [b"hi"] * 10
        assert lookups == ["localhost"]
        assert server.connections == 10
        assert b"Host: localhost:" in server.requests[0]
        ep.close()


async def test_a_name_that_does_not_resolve_cannot_connect() -> None:
    ep = Endpoint("http://no-such-host.invalid/v1", HEADERS, SLOW, None)
    with pytest.raises(ConnectFailed, match="cannot resolve"):
        await ep.post(b"{}")


async def test_a_connection_idle_too_long_is_closed_instead_of_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.request(reader)
            writer.write(ok(b"hi"))

    async for server in serve(handler):
        ep = endpoint(server)
        assert await (await ep.post(b"{}")).read() == b"hi"
        ep._idle[0].idle_since -= 3600  # as if an hour had passed
        assert await (await ep.post(b"{}")).read() == b"hi"
        assert server.connections == 2
        ep.close()


async def test_a_request_cancelled_before_its_answer_closes_its_connection() -> None:
    received = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        received.set()
        await reader.read()  # until the client hangs up

    async for server in serve(handler):
        ep = endpoint(server)
        post = asyncio.ensure_future(ep.post(b"{}"))
        await asyncio.wait_for(received.wait(), 5)
        post.cancel()
        with pytest.raises(asyncio.CancelledError):
            await post
        await asyncio.wait_for(server.closed.wait(), 2)
        assert ep._idle == []
