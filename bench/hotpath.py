"""What steps of the hot path cost on the event loop, in isolation.

`python bench/hotpath.py [--events 20000] [--batch 32] [--repeats 5]` times, inside one uvloop
loop, the work every answered call does when its usage event is recorded: the access line (the
per-line `log.info` path, as before issue 16, against the per-tick batched handler `gateway
serve` installs now), the Prometheus metrics, the usage row (`build_row`), and the journal
append with each fsync policy; and per stream event, splitting an upstream read of one SSE event
into its payload (`sse_batches`); and per upstream call, `UpstreamClient.send` + `read` of a
canned answer from a minimal keep-alive HTTP server in the same loop (32 calls at a time; the
server's share is the same on both sides of a comparison; CPU time of the process, not wall
time, so the preemption of a shared core is left out). `--upstream-styles` compares aiohttp's
request set-up as the gateway called it before and now, in one process. `PYTHONPATH=<checkout>`
times another checkout's gateway/ (the cases it lacks are skipped), so before and after run the
same script. Events are recorded `--batch` at a time, then the loop turns once (`await
asyncio.sleep(0)`), as when that many concurrent calls end in one tick; the loop turn is inside
the timing, so a batched write is charged to its events. Output goes to files in a temporary
directory (a real write per line or per batch, as stderr redirected to a file). Per-call
microseconds, median of the repeats; the box's noise moves them by ~10%. This is the cost on the
loop, not a throughput: bench/run.py measures that.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvloop

from gateway.accesslog import LOGGER, AccessLogSink
from gateway.config import load_config
from gateway.keys.principal import Principal
from gateway.logs import TEXT_FORMAT
from gateway.metering.journal import Journal
from gateway.metering.rows import build_row
from gateway.metering.setup import price_book
from gateway.metering.spool import Spool
from gateway.metrics import GatewayMetrics
from gateway.providers import build_provider
from gateway.providers.stream import sse_batches
from gateway.reasoning_memory import ReasoningMemory
from gateway.routing.health import HealthBoard
from gateway.upstream import UpstreamClient
from gateway.usage import Usage, UsageEvent


def event(i: int) -> UsageEvent:
    return UsageEvent(
        request_id=f"0af7651916cd43dd8448eb211c80319c-{i}", requested_model="deepseek-v4-flash",
        model="deepseek-v4-flash", thinking="off", stream=False, status="ok",
        provider="deepseek", upstream_model="deepseek-v4-flash",
        usage=Usage(prompt_tokens=12, completion_tokens=24, cache_hit_tokens=0,
                    cache_miss_tokens=12, reasoning_tokens=14),
        attempts=[("deepseek", "200")], latency_s=0.0021, ttft_s=0.0021, overhead_s=0.0003,
        cost_usd=0.0000081, book_cost_usd=0.0000081, api="openai.chat",
        principal=Principal(key_id=None, key_name=None, team=None))


def access_logger(directory: Path, batched: bool) -> None:
    """The access logger as `gateway serve` sets it up now (batched) or did before (a line
    per `log.info`, through a StreamHandler with the text format)."""
    access = logging.getLogger(LOGGER)
    for old in list(access.handlers):
        access.removeHandler(old)
    import gateway.accesslog

    stream = (directory / f"access-{'batched' if batched else 'per-line'}.log").open("a")
    batch_handler = getattr(gateway.accesslog, "AccessBatchHandler", None)
    handler = batch_handler(stream) if batched and batch_handler else logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    access.addHandler(handler)
    access.propagate = False
    access.setLevel(logging.INFO)


async def per_call(record: Callable[[UsageEvent], object], events: list[UsageEvent],
                   batch: int) -> float:
    started = time.perf_counter()
    for at in range(0, len(events), batch):
        for item in events[at:at + batch]:
            record(item)
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    return (time.perf_counter() - started) / len(events) * 1e6


async def measure(opts: argparse.Namespace, directory: Path) -> dict[str, float]:
    config = load_config(None, env={"DEEPSEEK_API_KEY": "k"})
    prices = price_book(config)
    events = [event(i) for i in range(opts.events)]
    rows = [build_row(e, prices) for e in events]
    metrics = GatewayMetrics(HealthBoard(config.routing.breaker), [])
    access = AccessLogSink()
    cases: dict[str, Callable[[UsageEvent], object]] = {}
    results: dict[str, list[float]] = {}

    def journaled(policy: str) -> Callable[[UsageEvent], object]:
        spool = Spool(directory / f"spool-{policy}")
        spool.open()
        journal = Journal(spool, fsync=policy)  # type: ignore[arg-type]
        rows_iter = iter(rows * (opts.repeats + 2))
        return lambda _event: journal.append(next(rows_iter))

    cases["access log, a log.info per line (before)"] = access.record
    cases["access log, batched per tick (now)"] = access.record
    cases["metrics (GatewayMetrics.record)"] = metrics.record
    cases["usage row (build_row)"] = lambda e: build_row(e, prices)
    cases["journal append, fsync off"] = journaled("off")
    cases["journal append, fsync interval (default; the fsync is in a thread)"] = journaled(
        "interval")
    import gateway.accesslog

    if not hasattr(gateway.accesslog, "AccessBatchHandler"):  # a checkout before issue 16
        del cases["access log, batched per tick (now)"]
    for _ in range(opts.repeats):
        for name, record in cases.items():
            if name.startswith("access log"):
                access_logger(directory, batched="batched" in name)
            results.setdefault(name, []).append(await per_call(record, events, opts.batch))
        results.setdefault("stream event, SSE split of a one-event read (sse_batches)",
                           []).append(await sse_per_event(opts.events * 5))
        results.setdefault("upstream call, send + read (UpstreamClient, 32 at a time)",
                           []).append(await upstream_per_call(opts.events // 4, opts.batch))
    return {name: statistics.median(values) for name, values in results.items()}


async def sse_per_event(n: int) -> float:
    read = (b'data: {"id":"b","object":"chat.completion.chunk","created":1767225600,'
            b'"model":"deepseek-v4-flash","choices":[{"index":0,"delta":{"content":" upon"},'
            b'"logprobs":null,"finish_reason":null}]}\n\n')

    async def reads() -> AsyncIterator[bytes]:
        for _ in range(n):
            yield read

    started = time.perf_counter()
    async for _batch in sse_batches(reads()):
        pass
    return (time.perf_counter() - started) / n * 1e6


ANSWER = (b'{"id":"x","object":"chat.completion","created":1767225600,"model":"m",'
          b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},'
          b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}')
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)


class CannedServer(asyncio.Protocol):
    """Answers every request on a keep-alive connection with one canned JSON body (requests
    carry a Content-Length body; no HTTP library, so its cost stays small and constant)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(self.answer(body))  # type: ignore[attr-defined]

    def answer(self, body: bytes) -> bytes:
        """The whole HTTP answer to a request with this body."""
        return RESPONSE


async def upstream_per_call(n: int, concurrency: int) -> float:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CannedServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = load_config(None, env={"DEEPSEEK_API_KEY": "k",
                                    "DEEPSEEK_BASE_URL": f"http://127.0.0.1:{port}"})
    provider = build_provider("deepseek", config.providers["deepseek"], ReasoningMemory())
    client = UpstreamClient()
    await client.start()
    payload = b'{"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}]}'

    async def worker(count: int) -> None:
        for _ in range(count):
            response = await client.send(provider, payload)
            await client.read(provider, response)
            response.release()

    try:
        await asyncio.gather(*(worker(10) for _ in range(concurrency)))  # warm the pool
        started = time.process_time()  # CPU, not wall: a shared core's preemption left out
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        return (time.process_time() - started) / (n // concurrency * concurrency) * 1e6
    finally:
        await client.close()
        server.close()


async def upstream_styles(n: int, concurrency: int, pairs: int) -> tuple[float, float]:
    """aiohttp `session.post` + read as the gateway called it before this change (a session
    with `skip_auto_headers=("User-Agent",)`, a dict of headers and a str URL) and now (no
    skip list, prebuilt `CIMultiDictProxy` headers with a User-Agent, a `yarl.URL`), in one
    process, in alternating blocks; CPU us per call, median over the blocks of each."""
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    loop = asyncio.get_running_loop()
    server = await loop.create_server(CannedServer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/chat/completions"
    payload = b'{"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}]}'
    plain = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    styles = {
        "before": (aiohttp.ClientSession(skip_auto_headers=("User-Agent",)), url, plain),
        "now": (aiohttp.ClientSession(), URL(url), CIMultiDictProxy(CIMultiDict(
            {"User-Agent": "switchyard/0", **plain}))),
    }
    found: dict[str, list[float]] = {name: [] for name in styles}

    async def worker(style: str, count: int) -> None:
        session, target, headers = styles[style]
        for _ in range(count):
            async with session.post(target, data=payload, headers=headers) as response:
                await response.read()

    try:
        for i in range(pairs):
            for style in (("before", "now") if i % 2 == 0 else ("now", "before")):
                await asyncio.gather(*(worker(style, 2) for _ in range(concurrency)))
                started = time.process_time()
                await asyncio.gather(*(worker(style, n // concurrency)
                                       for _ in range(concurrency)))
                found[style].append((time.process_time() - started)
                                    / (n // concurrency * concurrency) * 1e6)
    finally:
        for session, _, _ in styles.values():
            await session.close()
        server.close()
    return statistics.median(found["before"]), statistics.median(found["now"])


def chunk_decode_per_event(n: int, fast: bool) -> float:
    """StreamDecoder.feed + the OpenAI Chat render of one content chunk (DeepSeek's own
    dialect, as the paced upstream sends), per chunk, CPU us. `fast=False` stops the decoder
    from learning shapes, so every chunk takes the full decode (what it did before)."""
    from gateway.core.call import Call
    from gateway.models import ResolvedModel
    from gateway.providers.stream import StreamDecoder
    from gateway.surfaces.openai_chat.parse import ChatOptions
    from gateway.surfaces.openai_chat.render import ChatStream
    from gateway.thinking import Thinking

    config = load_config(None, env={"DEEPSEEK_API_KEY": "k"})
    provider = build_provider("deepseek", config.providers["deepseek"], ReasoningMemory())
    thinking = Thinking(True)
    decoder = StreamDecoder(provider, "deepseek-v4-flash", thinking)
    if not fast and hasattr(decoder, "_learn"):
        decoder._learn = lambda chunk: None  # type: ignore[method-assign]
    call = Call("openai.chat", "deepseek-v4-flash", ResolvedModel("deepseek-v4-flash", True),
                thinking, [], {}, True, None, ChatOptions(False))
    render = ChatStream(call).chunk
    events = [(b'{"id":"b","object":"chat.completion.chunk","created":1767225600,'
               b'"model":"deepseek-v4-flash","choices":[{"index":0,"delta":{"content":" w'
               + str(i % 97).encode() + b'"},"logprobs":null,"finish_reason":null}]}')
              for i in range(n)]
    started = time.process_time()
    for data in events:
        chunk = decoder.feed(data)
        assert chunk is not None
        render(chunk)
    return (time.process_time() - started) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--upstream-styles", action="store_true",
                   help="only compare aiohttp request set-up before/now (20 alternating blocks)")
    p.add_argument("--chunk-decode", action="store_true",
                   help="only compare a content chunk's decode + render without and with the "
                   "decoder's fast path (10 pairs)")
    opts = p.parse_args()
    if opts.chunk_decode:
        pairs = [(chunk_decode_per_event(50_000, False), chunk_decode_per_event(50_000, True))
                 for _ in range(10)]
        full = statistics.median(a for a, _ in pairs)
        fast = statistics.median(b for _, b in pairs)
        ratio = statistics.median(b / a for a, b in pairs)
        print(f"content chunk decode + render, CPU us per chunk (10 pairs of 50,000): full "
              f"decode {full:.2f}, with the fast path {fast:.2f}; per-pair ratio median "
              f"{ratio:.3f} (range {min(b / a for a, b in pairs):.3f}-"
              f"{max(b / a for a, b in pairs):.3f})")
        return 0
    if opts.upstream_styles:
        before, now = uvloop.run(upstream_styles(4000, opts.batch, 20))
        print(f"aiohttp post + read, CPU us per call (median of 20 alternating blocks): "
              f"before {before:.1f}, now {now:.1f}, now / before {now / before:.3f}")
        return 0
    with tempfile.TemporaryDirectory(prefix="switchyard-sinks-") as tmp:
        found = uvloop.run(measure(opts, Path(tmp)))
    print(f"per call, us (median of {opts.repeats}; {opts.events} events, {opts.batch} per "
          "loop tick)")
    print("| what | us per call |\n|---|---:|")
    for name, us in found.items():
        print(f"| {name} | {us:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
