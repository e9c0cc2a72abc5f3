"""Where the gateway's CPU goes: py-spy samples of one gateway under wrk load.

`python bench/profile.py [--mode non-stream|stream] [--seconds 20] [--connections 32]
[--metering on|off] [--out DIR]` starts the instant upstream (nginx, as in run.py), a gateway
metering into a scratch Postgres database (or not), drives it with wrk while
`py-spy record --nonblocking --format raw` samples it, and prints the share of samples per
component (self time, by the file the innermost frame is in) and the gateway's own functions
by inclusive time. py-spy is not a project dependency: `pip install py-spy` into the venv.
The server is pinned to CPU 0 and nginx, wrk and py-spy to CPU 1, as in run.py.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py: nginx, gateway start-up, wrk, scratch database

# Innermost-frame file fragments -> a component name; the first match wins.
COMPONENTS = (
    ("gateway/metering/", "gateway: metering"),
    ("gateway/accesslog", "gateway: access log"),
    ("gateway/metrics", "gateway: metrics"),
    ("gateway/", "gateway: other own code"),
    ("logging/", "stdlib logging"),
    ("prometheus_client", "prometheus-client"),
    ("aiohttp", "aiohttp (upstream client)"),
    ("yarl", "aiohttp (upstream client)"),
    ("multidict", "aiohttp (upstream client)"),
    ("uvicorn", "uvicorn + httptools"),
    ("sqlalchemy", "sqlalchemy (writer)"),
    ("asyncpg", "asyncpg (writer)"),
    ("asyncio", "asyncio"),
    ("<GC>", "gc"),
)


# Where a sample's time is charged: the outermost frame matching one of these (in this order
# within a frame), else the innermost frame's library. Names are what RESULTS-perf.md lists.
_WRITER = "metering writer task (insert: SQLAlchemy, asyncpg)"
_TRANSLATE = "provider payload + answer translation"
_ROUTING = "routing, breaker, failover bookkeeping"
_SEND = "response send (uvicorn send)"
_INTAKE = "uvicorn/httptools request intake"
GROUPS = (
    ("access log (AccessLogSink.record)", "AccessLogSink.record"),
    ("access log (AccessLogSink.record)", "AccessBatchHandler.write_lines"),
    ("usage row + journal (MeteringWriter.record)", "MeteringWriter.record"),
    ("metrics (GatewayMetrics.record)", "GatewayMetrics.record"),
    (_WRITER, "MeteringWriter._run"), (_WRITER, "_insert_or_spool"),
    (_WRITER, "UsageStore.insert"), (_WRITER, "sqlalchemy"), (_WRITER, "asyncpg"),
    ("stream decode (StreamDecoder.feed_batch)", "feed_batch"),
    ("SSE split (sse_batches)", "sse_batches"),
    ("stream render", "render_held"),
    ("upstream request (aiohttp send)", "UpstreamClient.send"),
    ("upstream read (aiohttp)", "UpstreamClient.read"),
    ("upstream read (aiohttp)", "UpstreamClient.chunks"),
    ("request parse (surface.parse)", "OpenAIChat.parse"),
    (_TRANSLATE, "Provider.build_payload"), (_TRANSLATE, "Provider.translate_answer"),
    (_ROUTING, "Failover._candidates"), (_ROUTING, "HealthBoard"),
    (_SEND, "send_json"), (_SEND, "send_whole_event_stream"), (_SEND, "send_event_stream"),
    ("auth", "KeyAuthenticator.authenticate"),
    (_INTAKE, "HttpToolsProtocol"), (_INTAKE, "GuardedHttpTools"),
)


def group(frames: list[str]) -> str:
    for frame in frames:
        for name, key in GROUPS:
            if key in frame:
                return name
    inner = frames[-1]
    if any(lib in inner for lib in ("aiohttp", "yarl", "multidict")):
        return "aiohttp, other (connection pool, response parsing)"
    if "uvicorn" in inner:
        return "uvicorn/httptools, other"
    if any(lib in inner for lib in ("asyncio", "uvloop", "runners")):
        return "event loop (asyncio, uvloop)"
    if "gateway/" in inner:
        return "gateway, other own code (pipeline, dispatch, record)"
    if "prometheus" in inner:
        return "prometheus-client, other"
    return "other"


def component(frame: str) -> str:
    for fragment, name in COMPONENTS:
        if fragment in frame:
            return name
    return "other: " + frame.split("(")[-1].split(":")[0].rsplit("/", 1)[-1]


def summarise(raw: Path, top: int) -> str:
    """py-spy's raw format: `frame;frame;...;innermost count` per line, outermost first."""
    self_time: collections.Counter[str] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        self_time[component(frames[-1])] += count
        groups[group(frames)] += count
        seen = set()
        for frame in (re.sub(r":\d+\)$", ")", f) for f in frames):
            if "gateway/" in frame and frame not in seen:
                seen.add(frame)
                own[frame] += count
    lines = [f"samples: {total}", "", "| where (outermost matching frame) | share |",
             "|---|---:|"]
    lines += [f"| {name} | {n / total:.1%} |" for name, n in groups.most_common()]
    lines += ["", "| component (innermost frame) | share |", "|---|---:|"]
    lines += [f"| {name} | {n / total:.1%} |" for name, n in self_time.most_common()]
    lines += ["", "| gateway function (inclusive) | share |", "|---|---:|"]
    lines += [f"| `{frame}` | {n / total:.1%} |" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=run.MODES, default="non-stream")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--metering", choices=("on", "off"), default="on")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="keep the raw samples here")
    parser.add_argument("--database-url", default=run.DEFAULT_DATABASE)
    ns = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    pinning = run.Pinning.detect(True)
    run_dir = Path(tempfile.mkdtemp(prefix="switchyard-profile-"))
    sup = run.Supervisor(run_dir)
    try:
        ports = run.UpstreamPorts.pick()
        run.start_nginx(pinning, sup, ports)
        upstream = ports.sse if ns.mode == "stream" else ports.json
        db = run.ScratchDatabase(ns.database_url) if ns.metering == "on" else None
        if db is not None:
            db.create()
        try:
            port = run.free_port()
            child = run.start_bench_gateway(pinning, sup, "gateway", port,
                                            f"http://127.0.0.1:{upstream}", db)
            run.wait_ready(child, port, "/healthz")
            url = run.chat_url(port)
            run.check_answer(url, ns.mode)
            run.run_wrk(pinning, url, ns.mode, ns.connections, 2.0)  # warm-up
            raw = (ns.out or run_dir) / f"profile-{ns.mode}.txt"
            raw.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [*pinning.load, py_spy, "record", "--nonblocking", "--format", "raw",
                 "--rate", str(ns.rate), "--duration", str(int(ns.seconds)),
                 "--pid", str(child.proc.pid), "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)
            result: list[run.WrkRun] = []
            load = threading.Thread(target=lambda: result.append(
                run.run_wrk(pinning, url, ns.mode, ns.connections, ns.seconds)))
            load.start()
            load.join()
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                print(err.decode(errors="replace"), file=sys.stderr)
                return 1
            wrk = result[0]
            print(f"mode {ns.mode}, {ns.connections} connections, metering {ns.metering}: "
                  f"{wrk.rps:,.0f} req/s under py-spy, p50 {wrk.p50_ms:.2f} ms, "
                  f"errors {wrk.errors}")
            print(summarise(raw, ns.top))
        finally:
            sup.stop_all()
            if db is not None:
                db.drop()
    finally:
        sup.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
