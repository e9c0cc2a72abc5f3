"""CPU-seconds per request with `gateway serve --workers N`: what extra workers cost.

`python bench/workers.py [--workers 1,2] [--mode non-stream] [--seconds 10] [--repeats 5]`
(a count with an `m`, e.g. `1m`, is that many workers with Prometheus's multiprocess files,
which `--workers 2` and more always use: it isolates what they cost; with an `s`, e.g. `2s`,
the workers are spread one per CPU once started, as N workers on N cores run, instead of
sharing CPU 0)
starts nginx (the instant upstream, as in run.py) and one gateway per worker count, side by
side, each metering into its own scratch Postgres database, all pinned to CPU 0 (wrk and
nginx on CPU 1), and drives them with wrk at 32 connections in interleaved rounds. For each
run it reads the CPU time (utime + stime, /proc/PID/stat) of the gateway's whole process tree
(uvicorn's supervisor and its workers) before and after, and divides by the requests wrk
completed. On a 2-core box the workers share one core here, so this compares the work per
request (multiprocess Prometheus files, N writers and pools, the supervisor), not throughput.
Written to bench/RESULTS-workers.md (`--output`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import run  # noqa: E402  (bench/run.py, found through the path above)

TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """pid and all its descendants (uvicorn's workers are children of the supervisor; the
    multiprocessing resource tracker too)."""
    out = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out += tree(int(child))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def switches(pid: int) -> int:
    """Context switches (voluntary + involuntary) of the process tree so far."""
    total = 0
    for p in tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in status.splitlines()
                     if "ctxt_switches:" in line)
    return total


def spread(pid: int) -> None:
    """Pin the supervisor's worker processes one per CPU (the supervisor stays where it is)."""
    cpus = sorted(os.sched_getaffinity(0))
    for i, worker in enumerate(tree(pid)[1:]):
        os.sched_setaffinity(worker, {cpus[i % len(cpus)]})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="1,2")
    p.add_argument("--mode", choices=run.MODES, default="non-stream")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--pace", type=int, default=None, metavar="MS",
                   help="each connection waits MS ms before each request: a fixed offered "
                        "rate (connections x 1000 / MS per s) that no gateway saturates, so "
                        "every count is measured at the same requests per wake-up")
    p.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS-workers.md")
    p.add_argument("--database-url", default=run.DEFAULT_DATABASE)
    opts = p.parse_args()
    counts = opts.workers.split(",")
    pinning = run.Pinning.detect(True)
    run_dir = Path(tempfile.mkdtemp(prefix="switchyard-workers-"))
    sup = run.Supervisor(run_dir)
    dbs: dict[str, run.ScratchDatabase] = {}
    per_request: dict[str, list[float]] = {n: [] for n in counts}
    switches_per: dict[str, list[float]] = {n: [] for n in counts}
    rates: dict[str, list[float]] = {n: [] for n in counts}
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        ports = run.UpstreamPorts.pick()
        run.start_nginx(pinning, sup, ports)
        upstream = f"http://127.0.0.1:{ports.sse if opts.mode == 'stream' else ports.json}"
        servers: dict[str, tuple[run.Child, int]] = {}
        for n in counts:
            dbs[n] = db = run.ScratchDatabase(opts.database_url)
            db.create()
            home = run_dir / f"workers-{n}"
            home.mkdir()
            config = home / "gateway.yaml"
            config.write_text(run.config_yaml({"metering": run.metering_config(home, True)}))
            env = run.server_env("gateway", upstream)
            env["DATABASE_URL"] = db.url
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            workers = int(n.rstrip("ms"))
            if workers > 1 or n.endswith("m"):  # `gateway serve --workers N` sets one for N > 1
                (home / "metrics").mkdir()
                env["PROMETHEUS_MULTIPROC_DIR"] = str(home / "metrics")
            port = run.free_port()
            argv = [*run.python_server_argv(pinning, port, "gateway"), "--config", str(config),
                    "--workers", str(workers)]
            child = sup.start(f"gateway-workers-{n}", argv, env, cwd=home)
            run.wait_ready(child, port, "/healthz", timeout=60)
            if n.endswith("s"):
                spread(child.proc.pid)
            run.check_answer(run.chat_url(port), opts.mode)
            run.run_wrk(pinning, run.chat_url(port), opts.mode, opts.connections, 2.0, opts.pace)
            servers[n] = (child, port)
        for i in range(opts.repeats):
            for n in run.round_order(counts, i):
                child, port = servers[n]
                before = cpu_seconds(child.proc.pid)
                switched = switches(child.proc.pid)
                wrk = run.run_wrk(pinning, run.chat_url(port), opts.mode, opts.connections,
                                  opts.seconds, opts.pace)
                used = cpu_seconds(child.proc.pid) - before
                requests = wrk.rps * opts.seconds
                switches_per[n].append((switches(child.proc.pid) - switched) / requests)
                per_request[n].append(used / requests * 1e6)
                rates[n].append(wrk.rps)
                print(f"  workers={n} run {i + 1}: {wrk.rps:,.0f} req/s, {used:.2f} CPU-s, "
                      f"{used / requests * 1e6:.0f} us CPU per request, "
                      f"{switches_per[n][-1]:.2f} context switches per request, errors "
                      f"{wrk.errors}",
                      flush=True)
    finally:
        sup.stop_all()
        for db in dbs.values():
            db.drop()
    base = statistics.median(per_request[counts[0]])
    lines = [
        "# CPU per request with several workers", "",
        "Written by `bench/workers.py`; see the module's docstring for the method.", "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "- repository: " + subprocess.run(["git", "-C", str(BENCH_DIR), "rev-parse", "--short",
                                           "HEAD"], capture_output=True, text=True).stdout.strip(),
        f"- command: `python bench/workers.py {' '.join(sys.argv[1:])}`",
        f"- load average at start: {load_start}; at end: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"- {opts.mode}, {opts.connections} connections"
        + (f", each waiting {opts.pace} ms before each request (offered "
           f"{opts.connections * 1000 / opts.pace:,.0f} requests/s)" if opts.pace else "")
        + f", {opts.repeats} x {opts.seconds:g} s wrk runs per gateway, interleaved; every "
        "gateway process pinned to CPU 0, wrk and nginx to CPU 1 (`s`: workers one per CPU); "
        "metering on, into Postgres (one scratch database per gateway); "
        "`PROMETHEUS_MULTIPROC_DIR` set for more than one worker (multiprocess metrics), unset "
        "for one (in-memory metrics, as `gateway serve` runs by default)",
        "", "| workers | CPU per request, median (us) | runs (us) | requests/s, median | "
        f"CPU per request / {counts[0]} worker's | context switches per request |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for n in counts:
        med = statistics.median(per_request[n])
        runs = ", ".join(f"{x:.0f}" for x in per_request[n])
        lines.append(f"| {n} | {med:.0f} | {runs} | {statistics.median(rates[n]):,.0f} | "
                     f"**{med / base:.2f}** | {statistics.median(switches_per[n]):.2f} |")
    text = "\n".join(lines) + "\n"
    opts.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
