"""Which upstream HTTP client costs least: floor variants differing only in it, interleaved.

    .venv/bin/python bench/transport.py [--clients aiohttp,proto] [--repeats 3] [--duration 8]

Starts nginx (bench/run.py's canned upstream) and one bench/transport_floor.py server per
client and mode, pinned to CPU 0 (wrk and nginx on CPU 1), then runs wrk at --connections
against each in turn, round after round (order rotated per round), reading the server's
utime+stime from /proc/PID/stat around each run: CPU-seconds per request is the number that
survives a shared box, requests/s is context. Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench

CLIENTS = ("aiohttp", "aiohttp-timeout", "aiohttp-lean", "pyreqwest", "aiosonic", "proto",
           "proto-timeout", "http1")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Cell:
    client: str
    mode: bench.Mode
    connections: int
    url: str
    pid: int
    rps: list[float] = field(default_factory=list)
    us_per_request: list[float] = field(default_factory=list)
    errors: int = 0


def measure(cell: Cell, pinning: bench.Pinning, seconds: float) -> None:
    argv = [*pinning.load, "wrk", "-t1", f"-c{cell.connections}", f"-d{seconds:g}s",
            "--timeout", "10s", "-s", str(bench.BENCH_DIR / "post.lua"), cell.url]
    if cell.mode == "stream":
        argv += ["--", "stream"]
    before = cpu_seconds(cell.pid)
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    used = cpu_seconds(cell.pid) - before
    total = re.search(r"(\d+) requests in", done.stdout)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if not (total and rps):
        raise bench.BenchError(f"could not parse wrk output:\n{done.stdout}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       done.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    cell.errors += sum(map(int, errors.groups())) if errors else 0
    cell.errors += int(non2xx.group(1)) if non2xx else 0
    cell.rps.append(float(rps.group(1)))
    cell.us_per_request.append(used / int(total.group(1)) * 1e6)
    print(f"  {cell.client:16} {cell.mode:10} c={cell.connections:<3} {cell.rps[-1]:>9.0f} req/s"
          f"  {cell.us_per_request[-1]:6.1f} us/req", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--modes", default="non-stream,stream")
    parser.add_argument("--connections", default="32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    ns = parser.parse_args()
    clients = ns.clients.split(",")
    modes: list[bench.Mode] = ns.modes.split(",")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    pinning = bench.Pinning.detect(True)
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="transport-") as tmp:
        sup = bench.Supervisor(Path(tmp))
        try:
            ports = bench.UpstreamPorts.pick()
            bench.start_nginx(pinning, sup, ports)
            for mode in modes:
                upstream = ports.sse if mode == "stream" else ports.json
                for client in clients:
                    port = bench.free_port()
                    env = bench.server_env("raw", f"http://127.0.0.1:{upstream}")
                    env["CLIENT"] = client
                    argv = bench.python_server_argv(pinning, port, "raw")
                    argv[argv.index("bench.raw_forwarder:create_app")] = (
                        "bench.transport_floor:create_app")
                    child = sup.start(f"{client}-{mode}", argv, env)
                    bench.wait_ready(child, port, None)
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    try:
                        bench.check_answer(url, mode)
                    except bench.BenchError as exc:
                        raise bench.BenchError(f"{client}: {exc}\n{child.log_tail()}") from None
                    for c in map(int, ns.connections.split(",")):
                        cells.append(Cell(client, mode, c, url, child.proc.pid))
            for cell in cells:  # warm-up
                bench.run_wrk(pinning, cell.url, cell.mode, cell.connections, 2)
            for i in range(ns.repeats):
                for cell in bench.round_order(cells, i):
                    measure(cell, pinning, ns.duration)
        finally:
            sup.stop_all()
    print(f"\nload average at start: {load}; at end: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n| client | mode | c | req/s (median) | CPU µs/request (median) | vs aiohttp "
          "| errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for cell in cells:
        base = next((b for b in cells if b.client == "aiohttp" and b.mode == cell.mode
                     and b.connections == cell.connections), None)
        us = statistics.median(cell.us_per_request)
        delta = f"{us - statistics.median(base.us_per_request):+.1f} µs" if base else ""
        print(f"| {cell.client} | {cell.mode} | {cell.connections} | "
              f"{statistics.median(cell.rps):,.0f} | {us:.1f} | {delta} | {cell.errors} |")


if __name__ == "__main__":
    main()
