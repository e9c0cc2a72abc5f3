"""The per-stream work of a streamed chat call whose upstream answered at once, in isolation.

`python bench/perstream.py [--calls 2000] [--part all|decode|record]` runs, without a loop or a
socket, what the gateway does for each such call after the upstream's bytes arrived (the
`Relay.whole` path): split the canned 14-event stream (bench/run.py `canned_sse`) into events,
decode them (`StreamDecoder`), render them for a Chat Completions client (`ChatStream`), and
record the usage event through the sinks `gateway serve` has without a database (pricing, the
Prometheus metrics, the batched access log writing to /dev/null). It is deterministic, so it
is meant for `valgrind --tool=callgrind`: instruction counts do not move with the box's load.
`PYTHONPATH=<checkout>` runs another checkout's gateway/, so before and after run one script:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \
        bench/perstream.py --calls 2000   # minus a --calls 0 run: the start-up

It prints a checksum of the bytes rendered, so two checkouts can be seen to agree.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import canned_sse

from gateway.accesslog import LOGGER, AccessLogSink
from gateway.config import load_config
from gateway.core.record import CallRecord
from gateway.keys.principal import Principal
from gateway.metering.cost import PricingSink
from gateway.metering.setup import price_book
from gateway.metrics import GatewayMetrics
from gateway.models import ModelCatalogue
from gateway.providers import build_provider
from gateway.providers.stream import SSESplitter, StreamDecoder
from gateway.reasoning_memory import ReasoningMemory
from gateway.routing.failover import Attempts
from gateway.routing.health import HealthBoard
from gateway.routing.policy import Target
from gateway.surfaces.openai_chat.surface import OpenAIChat
from gateway.usage import FanOutSink

REQUEST = b'{"model":"deepseek-v4-flash","stream":true,"messages":[{"role":"user","content":"Hi"}]}'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--part", choices=("all", "decode", "record", "deadline", "relay"),
                        default="all")
    parser.add_argument("--sinks", default="metrics,access",
                        help="the usage sinks after pricing (metrics, access; '' for none)")
    parser.add_argument("--upstream-model", default=None,
                        help="relay part: the upstream's own name for the model in its "
                        "events (e.g. deepseek-flash), which the gateway renames")
    parser.add_argument("--batch", type=int, default=32,
                        help="calls that end in one loop tick (the access log writes per tick)")
    opts = parser.parse_args()
    return uvloop.run(run(opts))


async def run(opts: argparse.Namespace) -> int:
    config = load_config(None, env={"DEEPSEEK_API_KEY": "k"})
    provider = build_provider("deepseek", config.providers["deepseek"], ReasoningMemory())
    surface = OpenAIChat(ModelCatalogue(config))
    call = surface.parse(REQUEST)
    target = Target(provider, "deepseek-v4-flash", model=call.model.canonical)
    metrics = GatewayMetrics(HealthBoard(config.routing.breaker), [])
    _access_log()
    sinks = {"metrics": metrics, "access": AccessLogSink()}
    sink = PricingSink(price_book(config), FanOutSink(
        [sinks[name] for name in opts.sinks.split(",") if name]))
    principal = Principal(key_id=None, key_name=None, team=None)
    upstream = canned_sse().encode()
    digest = hashlib.sha256()
    if opts.part == "deadline":
        return await deadlines(target, opts.calls)
    if opts.part == "relay":
        return await relay_reads(provider, surface, call, target, sink, opts.calls,
                                 opts.upstream_model)
    decode = opts.part in ("all", "decode")
    record_too = opts.part in ("all", "record")
    # The record part alone records the canned stream's usage, decoded once here.
    decoded = StreamDecoder(provider, call.model.canonical, call.thinking)
    decoded.feed_batch(SSESplitter().feed(upstream))
    for i in range(opts.calls):
        body = b""
        decoder = decoded
        if decode:
            decoder = StreamDecoder(provider, call.model.canonical, call.thinking)
            renderer = surface.stream_renderer(call)
            chunks, _ = decoder.feed_batch(SSESplitter().feed(upstream))
            render = renderer.chunk
            body = b"".join([render(chunk) for chunk in chunks]) + renderer.finish(decoder.usage)
        if record_too:
            record = CallRecord(sink, surface.api, f"req-{i}")
            record.identify(principal)
            record.describe(call)
            record.served_by(target, Attempts(items=[("deepseek", "200")]))
            decoder.remember_reasoning()
            record.stream_ended("ok", decoder.usage, decoder.first_token_at)
        if i == 0:
            digest.update(body)
        if i % opts.batch == opts.batch - 1:
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    print(digest.hexdigest()[:16], opts.calls)
    return 0


async def deadlines(target: Target, calls: int) -> int:
    """A streamed attempt's deadline (gateway/core/dispatch.py), entered and left in time."""
    from gateway.core.dispatch import _Deadline

    async def attempt() -> None:
        await asyncio.sleep(0)

    for _ in range(calls):
        async with _Deadline(target, 30.0):
            await attempt()
    print("deadline", calls)
    return 0


class _Transport:
    """What the upstream connection and the client writer need of a transport: writes kept
    for the checksum."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def relay_reads(provider: Any, surface: OpenAIChat, call: Any, target: Target,
                      sink: PricingSink, reads: int, upstream_model: str | None) -> int:
    """A running stream's reads as `bench/paced.py` sends them (one content event, chunked),
    each from the upstream connection's `data_received` through the relay's push
    (`Relay._push`: split, decode, render) to a client writer framed as
    `HeadWithBody.write_part` frames it: the per-chunk work of a paced stream, less the
    syscalls and uvloop."""
    from paced import Ticker

    from gateway.core.attempt import OpenStream
    from gateway.core.relay import Relay
    from gateway.http1 import Connection, Endpoint, Response, Timeouts
    from gateway.routing.failover import Served
    from gateway.upstream import UpstreamEvents

    ticker = Ticker(reads + 2, 0.02)
    if upstream_model is not None:
        public = b'"model":"deepseek-v4-flash"'
        renamed = b'"model":"%s"' % upstream_model.encode()
        ticker.head = _renamed(ticker.head, public, renamed)
        ticker.piece = _renamed(ticker.piece, public, renamed)
    endpoint = Endpoint("http://127.0.0.1:9/v1/chat/completions", {}, Timeouts(5, 5, 10),
                        None)
    upstream, client = _Transport(), _Transport()
    conn = Connection(endpoint)
    conn.connection_made(upstream)  # type: ignore[arg-type]
    response = conn.response = Response(conn)
    conn.data_received(ticker.head)
    decoder = StreamDecoder(provider, call.model.canonical, call.thinking)
    events = UpstreamEvents(provider, response)  # type: ignore[arg-type]
    held, _ = decoder.feed_batch(events.splitter.feed(await response.next_read()))
    opened = OpenStream(target, response, decoder, events, held)  # type: ignore[arg-type]
    served = Served(result=opened, target=target, attempts=Attempts(items=[]))
    relay = Relay(served, surface.stream_renderer(call), CallRecord(sink, surface.api, "r"))

    def write_part(body: bytes, write: Any = client.write) -> bool:
        write(b"%x\r\n%s\r\n" % (len(body), body))
        return True

    relayed = relay.chunks(write_part)
    client.write(await relayed.__anext__())  # the held chunks; then the relay parks
    pushing = asyncio.ensure_future(relayed.__anext__())
    await asyncio.sleep(0)
    piece, feed = ticker.piece, conn.data_received
    for _ in range(reads):
        feed(piece)
    pushing.cancel()
    digest = hashlib.sha256(b"".join(client.written[:3]))
    print(digest.hexdigest()[:16], len(client.written) - 1)
    return 0


def _renamed(framed: bytes, old: bytes, new: bytes) -> bytes:
    """Chunked-encoded events (after any response head) with `old` replaced, re-framed."""
    head, sep, body = framed.rpartition(b"\r\n\r\n")
    if not sep or b"HTTP/1.1" not in head:
        head, sep, body = b"", b"", framed
    out = []
    while body:
        size, _, rest = body.partition(b"\r\n")
        length = int(size, 16)
        data, body = rest[:length].replace(old, new), rest[length + 2:]
        out.append(b"%x\r\n%s\r\n" % (len(data), data))
    return head + sep + b"".join(out)


def _access_log() -> None:
    """The access logger as `gateway serve` sets it up (one batched handler), into /dev/null."""
    from gateway.accesslog import AccessBatchHandler
    from gateway.logs import TextFormatter

    access = logging.getLogger(LOGGER)
    handler = AccessBatchHandler(open("/dev/null", "w"))  # noqa: SIM115  (lives to the exit)
    handler.setFormatter(TextFormatter())
    access.addHandler(handler)
    access.propagate = False
    access.setLevel(logging.INFO)


if __name__ == "__main__":
    raise SystemExit(main())
