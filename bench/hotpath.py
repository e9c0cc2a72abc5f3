"""What steps of the hot path cost on the event loop, in isolation.

`python bench/hotpath.py [--events 20000] [--batch 32] [--repeats 5]` times, inside one uvloop
loop, the work every answered call does when its usage event is recorded: the access line (the
per-line `log.info` path, as before issue 16, against the per-tick batched handler `gateway
serve` installs now), the Prometheus metrics, the usage row (`build_row`), and the journal
append with each fsync policy; and per stream event, splitting an upstream read of one SSE event
into its payload (`sse_batches`). `PYTHONPATH=<checkout>` times another checkout's gateway/ (the
cases it lacks are skipped), so before and after run the same script. Events are recorded
`--batch` at a time, then the loop turns once (`await asyncio.sleep(0)`), as when that many
concurrent calls end in one tick; the loop turn is inside the timing, so a batched write is
charged to its events. Output goes to files in a temporary directory (a real write per line or
per batch, as stderr redirected to a file). Per-call microseconds, median of the repeats; the
box's noise moves them by ~10%. This is the cost on the loop, not a throughput: bench/run.py
measures that.
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
from gateway.providers.stream import sse_batches
from gateway.routing.health import HealthBoard
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    opts = p.parse_args()
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
