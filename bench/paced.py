"""Paced streams: many slow SSE streams at once, the workload users feel.

`python bench/paced.py [--streams 1000] [--chunks 200] [--interval 0.02] [--seconds 20]`
starts a paced upstream (below: every stream gets its first content chunk at once, then one
every `--interval` seconds, `--chunks` in all, then a finish chunk, usage and [DONE]), the raw
aiohttp forwarder (the floor) and the gateway (metering on, into a scratch Postgres database,
as in run.py), and for each target (the upstream direct, the floor, the gateway; one after the
other, in one run) holds `--streams` concurrent streams for `--seconds` with a driver (below):
each stream posts, reads to the end, posts again on the same connection. Written to
bench/RESULTS-paced.md (`--output`). Measured inside a window that opens once every stream has
started (the starts are spread over one stream's length) and closes at the end:

- content chunks relayed per second, against the offered rate (streams / interval) and the
  upstream's own rate as the driver saw it direct;
- time to first token (from sending the request to the first content chunk) p50 / p99, and
  "added": the target's minus the upstream's measured direct; of the requests sent inside the
  window with at least `TTFT_GRACE` (1 s) of it left (one still waiting at the close counts
  what it waited), not of the ramp's first requests that were still waiting when it opened;
- inter-chunk gap: per stream, between reads that carried content, minus the interval;
- CPU per chunk: the server process's utime + stime over the window (/proc/PID/stat) divided
  by the chunks relayed, and the ratio gateway / floor;
- RSS: the server's VmRSS at the window's end and its peak (VmHWM).

Pinning as in run.py: the server under test on CPU 0, the upstream and the driver on CPU 1.
The upstream and the driver are small asyncio protocols (no HTTP library), so at 50,000
chunks/s they stay off the measured core and are not the bottleneck (the direct row shows it).
Their kernel work does not all stay off it: on loopback a write wakes a sleeping reader from
the writer's core. So the driver never sleeps (`_spin`; `--driver sleep` is the harness of
every result before session 9; bench/RESULTS-paced-session9.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REQUEST = json.dumps({"model": "deepseek-v4-flash", "stream": True,
                      "messages": [{"role": "user", "content": "Tell me a story"}]}).encode()
TTFT_GRACE = 1.0  # a request sent this close to the window's end is not timed
CONTENT_MARK = b'"content":"'  # in every content chunk, never in the role, finish or usage ones
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- paced upstream

def _event(payload: dict[str, Any]) -> bytes:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunk(delta: dict[str, Any], finish: str | None = None,
           model: str = "deepseek-v4-flash") -> dict[str, Any]:
    return {"id": "paced", "object": "chat.completion.chunk", "created": 1767225600,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


class PacedUpstream(asyncio.Protocol):
    """One keep-alive connection; one shared ticker writes every live stream's next chunk."""

    def __init__(self, ticker: Ticker) -> None:
        self.ticker = ticker
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop: not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            self.ticker.start(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class Ticker:
    """Writes every live stream's next chunk once per `interval`. With `spread` = 1 every
    stream's chunk goes out in the same tick (a burst of one chunk per stream: the worst
    case, the streams phase-locked); with `spread` = N the interval is cut into N slots and a
    stream keeps the slot it started in (N smaller bursts), as independent streams arrive
    from a real provider."""

    def __init__(self, chunks: int, interval: float, spread: int = 1,
                 model: str = "deepseek-v4-flash") -> None:
        self.interval = interval
        self.chunks = chunks
        self.slots: list[dict[PacedUpstream, int]] = [{} for _ in range(spread)]
        self.slot = 0  # the slot the ticker is at: a new stream joins it
        self.head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n"
                     + _event(_chunk({"role": "assistant", "content": None}, model=model))
                     + _event(_chunk({"content": "Once"}, model=model)))
        self.piece = _event(_chunk({"content": " upon"}, model=model))
        usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks,
                 "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": 12}
        self.tail = (_event(_chunk({}, "stop", model))
                     + _event({**_chunk({}, model=model), "choices": [], "usage": usage})
                     + b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")

    def start(self, stream: PacedUpstream) -> None:
        if stream.transport is not None:
            stream.transport.write(self.head)
            self.slots[self.slot][stream] = self.chunks - 1

    def run(self, loop: asyncio.AbstractEventLoop) -> None:
        start = loop.time()
        step_seconds = self.interval / len(self.slots)
        tick = 0

        def step() -> None:
            nonlocal tick
            live = self.slots[self.slot]
            ended = []
            for stream, left in live.items():
                transport = stream.transport
                if transport is None:
                    ended.append(stream)
                    continue
                if left <= 1:
                    transport.write(self.piece + self.tail)
                    ended.append(stream)
                else:
                    transport.write(self.piece)
                    live[stream] = left - 1
            for stream in ended:
                del live[stream]
            tick += 1
            self.slot = tick % len(self.slots)
            loop.call_at(max(start + tick * step_seconds, loop.time()), step)

        loop.call_at(start + step_seconds, step)


async def serve_upstream(port: int, chunks: int, interval: float, spread: int,
                         model: str) -> None:
    loop = asyncio.get_running_loop()
    ticker = Ticker(chunks, interval, spread, model)
    ticker.run(loop)
    server = await loop.create_server(lambda: PacedUpstream(ticker), "127.0.0.1", port,
                                      backlog=4096)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------------------- driver

@dataclass
class Tally:
    chunks_in_window: int = 0
    ttft: array[float] = field(default_factory=lambda: array("d"))
    gaps: array[float] = field(default_factory=lambda: array("d"))
    requests: int = 0
    errors: int = 0
    ttft_unfinished: int = 0  # timed requests with no first chunk by the window's close


class Stream(asyncio.Protocol):
    """One client connection: post, count content chunks to the end of the body, post again."""

    def __init__(self, request: bytes, tally: Tally, window: list[float]) -> None:
        self.request = request
        self.tally = tally
        self.window = window  # [opens, closes], time.monotonic()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.timed = False  # its first chunk's time goes into the TTFT figures
        self.last = 0.0  # the last read with content in this response (0: none yet)
        self.carry = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop: not a subclass
        self.post()

    def post(self) -> None:
        assert self.transport is not None
        if time.monotonic() >= self.window[1]:
            self.transport.close()
            return
        self.sent_at = time.monotonic()
        # Timed: sent inside the window, with TTFT_GRACE left for its first chunk. Timing
        # what was sent before it opened counted only the ramp's slowest first requests (the
        # rest had their first chunk before it opened): every TTFT over 1 s in session 8's
        # runs was one of those.
        self.timed = self.window[0] <= self.sent_at < self.window[1] - TTFT_GRACE
        self.last = 0.0
        self.carry = b""
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        text = self.carry + data
        count = text.count(CONTENT_MARK)
        if count:
            tally = self.tally
            in_window = self.window[0] <= now < self.window[1]
            if in_window:
                tally.chunks_in_window += count
            if self.last == 0.0:
                if self.timed:
                    tally.ttft.append(now - self.sent_at)
                    self.timed = False
            elif in_window:
                tally.gaps.append(now - self.last)
            self.last = now
        if b"\r\n0\r\n\r\n" in text:  # the chunked body's end
            if self.last == 0.0:  # an answer without content: an error, not a TTFT
                self.tally.errors += 1
                self.timed = False
            self.tally.requests += 1
            self.post()
            return
        self.carry = text[-(len(CONTENT_MARK) - 1):]  # a mark split across two reads



async def drive(url_port: int, path: str, streams: int, seconds: float,
                stagger: float, spin: bool = False) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    if spin:
        _spin(loop)
    request = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{url_port}\r\n"
               f"authorization: Bearer sk-bench\r\ncontent-type: application/json\r\n"
               f"content-length: {len(REQUEST)}\r\n\r\n").encode() + REQUEST
    tally = Tally()
    begin = time.monotonic()  # uvloop's loop.time() has 1 ms steps: too coarse for gaps
    window = [begin + stagger + 1.0, begin + seconds]
    conns: list[Stream] = []

    async def open_one(i: int) -> None:
        await asyncio.sleep(stagger * i / streams)
        try:
            _, proto = await loop.create_connection(
                lambda: Stream(request, tally, window), "127.0.0.1", url_port)
            conns.append(proto)
        except OSError:
            tally.errors += 1

    await asyncio.gather(*(open_one(i) for i in range(streams)))
    await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
    for conn in conns:
        if conn.timed:  # still waiting at the close: counted as what it waited so far
            tally.ttft.append(time.monotonic() - conn.sent_at)
            tally.ttft_unfinished += 1
        if conn.transport is not None:
            conn.transport.close()
    return {"chunks": tally.chunks_in_window, "window_s": window[1] - window[0],
            "ttft": list(tally.ttft), "gaps": list(tally.gaps), "requests": tally.requests,
            "errors": tally.errors, "connected": len(conns),
            "ttft_unfinished": tally.ttft_unfinished}


def _spin(loop: asyncio.AbstractEventLoop) -> None:
    """Keep the driver's loop from ever sleeping in epoll_wait (a callback that schedules
    itself runs every iteration, so each poll has a zero timeout). A reader asleep on
    loopback is woken by the writer: on the measured server's core, in the server's write.
    Perf at 1,000 streams put 18% of the gateway's core there (`sock_def_readable`), a cost
    a client on its own machine pays on that machine."""
    def again() -> None:
        loop.call_soon(again)

    loop.call_soon(again)


# ---------------------------------------------------------------------------- orchestration

def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_uvloop() -> None:
    import uvloop  # the gateway's own dependency

    uvloop.install()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def memory_mib(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Result:
    target: str
    chunks: int
    window_s: float
    ttft: list[float]
    gaps: list[float]
    requests: int
    errors: int
    connected: int
    cpu_s: float | None
    rss: tuple[float, float] | None
    ttft_unfinished: int = 0

    @property
    def rate(self) -> float:
        return self.chunks / self.window_s


def measure(target: str, pinning: Any, port: int, path: str, pid: int | None,
            opts: argparse.Namespace, run_dir: Path) -> Result:
    stagger = opts.chunks * opts.interval
    out = run_dir / f"drive-{target}.json"
    argv = [*pinning.load, sys.executable, __file__, "drive", "--port", str(port), "--path", path,
            "--streams", str(opts.streams), "--seconds", str(opts.seconds + stagger + 1),
            "--stagger", str(stagger), "--out", str(out)]
    if opts.driver == "spin":
        argv.append("--spin")
    driver = subprocess.Popen(argv)
    time.sleep(stagger + 1.0)  # the window opens
    cpu0 = cpu_seconds(pid) if pid else None
    driver.wait(timeout=opts.seconds + stagger + 120)
    cpu = cpu_seconds(pid) - cpu0 if pid and cpu0 is not None else None
    rss = memory_mib(pid) if pid else None
    data = json.loads(out.read_text())
    return Result(target, data["chunks"], data["window_s"], data["ttft"], data["gaps"],
                  data["requests"], data["errors"], data["connected"], cpu, rss,
                  data["ttft_unfinished"])


def report(results: list[Result], opts: argparse.Namespace, facts: dict[str, str]) -> str:
    offered = opts.streams / opts.interval
    direct = next((r for r in results if r.target == "direct"), None)
    floor = next((r for r in results if r.target == "raw"), None)
    base_ttft = pct(direct.ttft, 0.99) if direct else 0.0
    base_ttft50 = pct(direct.ttft, 0.5) if direct else 0.0
    ms = 1000.0
    lines = [
        "# Paced streams", "",
        "Written by `bench/paced.py`; see bench/README.md (\"Paced streams\") for what is "
        "measured and how to read it.", "",
        *(f"- {k}: {v}" for k, v in facts.items()),
        f"- streams: {opts.streams} concurrent, {opts.chunks} content chunks each, one every "
        f"{opts.interval * 1000:g} ms; offered {offered:,.0f} chunks/s; "
        + ("every stream's chunk in one burst per interval (--spread 1)" if opts.spread == 1
           else f"chunks spread over {opts.spread} slots per interval (--spread {opts.spread})"),
        f"- the upstream names the model `{opts.upstream_model}`"
        + ("" if opts.upstream_model == "deepseek-v4-flash"
           else " (the gateway renames it to the public deepseek-v4-flash in every chunk)"),
        f"- window: {results[0].window_s:.1f} s per target, after every stream started",
        "- driver: " + ("spins (its loop never sleeps, so the server's writes wake no "
                        "one: --driver spin)" if opts.driver == "spin"
                        else "sleeps between reads (on loopback the server's writes wake it)"),
        "", "## Results", "",
        "| target | chunks/s relayed | of offered | of direct | TTFT p50 / p99 ms | TTFT added "
        "p99 ms | gap added p50 / p99 ms | CPU per 1k chunks | CPU / floor's | RSS / peak MiB "
        "| streams done | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        gaps = [g - opts.interval for g in r.gaps]
        cpu_k = r.cpu_s / r.chunks * 1000 if r.cpu_s is not None and r.chunks else None
        floor_k = (floor.cpu_s / floor.chunks * 1000
                   if floor and floor.cpu_s is not None and floor.chunks else None)
        lines.append(
            f"| {r.target} | {r.rate:,.0f} | {r.rate / offered:.3f} | "
            f"{r.rate / direct.rate if direct and direct.rate else float('nan'):.3f} | "
            f"{pct(r.ttft, 0.5) * ms:.1f} / {pct(r.ttft, 0.99) * ms:.1f} | "
            f"{(pct(r.ttft, 0.99) - base_ttft) * ms:+.1f} | "
            f"{pct(gaps, 0.5) * ms:+.1f} / {pct(gaps, 0.99) * ms:+.1f} | "
            + (f"{cpu_k:.3f} s" if cpu_k is not None else "-") + " | "
            + (f"{cpu_k / floor_k:.2f}" if cpu_k is not None and floor_k else "-") + " | "
            + (f"{r.rss[0]:.0f} / {r.rss[1]:.0f}" if r.rss else "-")
            + f" | {r.requests:,} | {r.errors} |")
    lines += ["", f"Direct TTFT p50 {base_ttft50 * ms:.1f} ms, p99 {base_ttft * ms:.1f} ms: "
              "the upstream and driver's own (\"added\" subtracts it).",
              "TTFT is timed for the requests sent inside the window with 1 s of it left: "
              + ", ".join(f"{r.target} {len(r.ttft):,}"
                          + (f" ({r.ttft_unfinished} still waiting at the close)"
                             if r.ttft_unfinished else "") for r in results) + ".", ""]
    gw = next((r for r in results if r.target == "gateway"), None)
    if gw is not None and floor is not None:
        gaps = [g - opts.interval for g in gw.gaps]
        offered_rate = direct.rate if direct and direct.rate else offered
        cpu_ratio = (gw.cpu_s / gw.chunks) / (floor.cpu_s / floor.chunks) if (
            gw.cpu_s and floor.cpu_s and gw.chunks and floor.chunks) else float("nan")
        checks = [
            ("chunks relayed / offered (the upstream's rate, measured direct) >= 0.98",
             gw.rate / offered_rate >= 0.98, f"{gw.rate / offered_rate:.3f}"),
            ("TTFT added p99 < 50 ms", (pct(gw.ttft, 0.99) - base_ttft) < 0.05,
             f"{(pct(gw.ttft, 0.99) - base_ttft) * ms:.1f} ms"),
            ("inter-chunk gap added p99 < 20 ms", pct(gaps, 0.99) < 0.02,
             f"{pct(gaps, 0.99) * ms:.1f} ms"),
            ("CPU per chunk <= 1.3 x the floor's", cpu_ratio <= 1.3, f"{cpu_ratio:.2f}"),
            ("RSS < 250 MB", gw.rss is not None and gw.rss[1] * 1.048576 < 250,
             f"peak {gw.rss[1]:.0f} MiB" if gw.rss else "-"),
        ]
        lines += ["## Targets (issue 16), the gateway", ""]
        lines += [f"- {name}: {value}: **{'PASS' if ok else 'FAIL'}**"
                  for name, ok, value in checks]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "upstream":
        p = argparse.ArgumentParser()
        p.add_argument("cmd")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--chunks", type=int, default=200)
        p.add_argument("--interval", type=float, default=0.02)
        p.add_argument("--spread", type=int, default=1)
        p.add_argument("--upstream-model", default="deepseek-v4-flash")
        a = p.parse_args(argv)
        raise_fd_limit()
        install_uvloop()
        asyncio.run(serve_upstream(a.port, a.chunks, a.interval, a.spread, a.upstream_model))
        return 0
    if argv and argv[0] == "drive":
        p = argparse.ArgumentParser()
        p.add_argument("cmd")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--path", required=True)
        p.add_argument("--streams", type=int, required=True)
        p.add_argument("--seconds", type=float, required=True)
        p.add_argument("--stagger", type=float, required=True)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--spin", action="store_true")
        a = p.parse_args(argv)
        raise_fd_limit()
        install_uvloop()
        result = asyncio.run(drive(a.port, a.path, a.streams, a.seconds, a.stagger, a.spin))
        a.out.write_text(json.dumps(result))
        return 0
    return orchestrate(argv)


def orchestrate(argv: list[str]) -> int:
    sys.path.insert(0, str(BENCH_DIR))
    import run  # bench/run.py: processes, pinning, the gateway's start-up, scratch database

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--chunks", type=int, default=200)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--seconds", type=float, default=20.0, help="measured window per target")
    p.add_argument("--upstream-model", default="deepseek-v4-flash",
                   help="the model's name in the upstream's events; another name than the "
                   "public deepseek-v4-flash (a provider's own, e.g. deepseek-flash) makes the "
                   "gateway rename it in every chunk, as with the real providers")
    p.add_argument("--spread", type=int, default=1,
                   help="slots per interval the upstream's chunks are spread over: 1 (default) "
                   "sends every stream's chunk in one burst per interval; 20 sends 1/20 of them "
                   "each ms at a 20 ms interval")
    p.add_argument("--driver", choices=("spin", "sleep"), default="spin",
                   help="spin (default since session 9): the driver's loop never sleeps, so "
                   "the server's writes wake no one, as with clients on their own machines "
                   "(see `_spin`); sleep: it waits in epoll_wait between reads and, on "
                   "loopback, the server's writes pay for waking it (every result file "
                   "before session 9)")
    p.add_argument("--targets", default="direct,raw,gateway")
    p.add_argument("--before", type=Path, default=None,
                   help="a checkout (a directory holding gateway/): adds target gateway-before, "
                   "that checkout's gateway run with PYTHONPATH=DIR, before `gateway`")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS-paced.md")
    p.add_argument("--database-url", default=run.DEFAULT_DATABASE)
    opts = p.parse_args(argv)
    raise_fd_limit()
    pinning = run.Pinning.detect(not opts.no_pin)
    run_dir = Path(tempfile.mkdtemp(prefix="switchyard-paced-"))
    sup = run.Supervisor(run_dir)
    facts = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
             "repository": subprocess.run(["git", "-C", str(BENCH_DIR), "rev-parse", "--short",
                                           "HEAD"], capture_output=True, text=True).stdout.strip(),
             "nproc": str(os.cpu_count()),
             "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
             "command": "`python bench/paced.py " + " ".join(argv) + "`",
             "pinning": "server on CPU 0, upstream and driver on CPU 1" if pinning.active
             else "none"}
    results: list[Result] = []
    db = None
    try:
        port = run.free_port()
        upstream = sup.start("paced-upstream", [*pinning.load, sys.executable, __file__,
                                                "upstream", "--port", str(port), "--chunks",
                                                str(opts.chunks), "--interval",
                                                str(opts.interval), "--spread",
                                                str(opts.spread), "--upstream-model",
                                                opts.upstream_model])
        run.wait_ready(upstream, port, None)
        base = f"http://127.0.0.1:{port}"
        targets = opts.targets.split(",")
        if opts.before is not None and "gateway" in targets:
            targets.insert(targets.index("gateway"), "gateway-before")
        for target in targets:
            print(f"-- {target}: {opts.streams} streams", flush=True)
            if target == "direct":
                results.append(measure(target, pinning, port, "/chat/completions", None, opts,
                                       run_dir))
                continue
            server_port = run.free_port()
            if target.startswith("gateway"):
                if db is not None:
                    db.drop()
                db = run.ScratchDatabase(opts.database_url)
                db.create()
                saved = os.environ.get("PYTHONPATH")
                if target == "gateway-before":  # server_env copies os.environ
                    os.environ["PYTHONPATH"] = str(opts.before)
                try:
                    child = run.start_bench_gateway(pinning, sup, target, server_port, base, db)
                finally:
                    os.environ.pop("PYTHONPATH", None)
                    if saved is not None:
                        os.environ["PYTHONPATH"] = saved
                run.wait_ready(child, server_port, "/healthz")
            else:
                child = sup.start(target, run.python_server_argv(pinning, server_port, target),
                                  run.server_env(target, base))
                run.wait_ready(child, server_port, None)
            results.append(measure(target, pinning, server_port, "/v1/chat/completions",
                                   child.proc.pid, opts, run_dir))
            sup.stop(child)
            r = results[-1]
            print(f"   {r.rate:,.0f} chunks/s, {r.requests} streams done, {r.errors} errors",
                  flush=True)
    finally:
        sup.stop_all()
        if db is not None:
            db.drop()
    facts["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(results, opts, facts)
    opts.output.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
