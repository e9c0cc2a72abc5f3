"""CPU seconds per request of two gateway checkouts, side by side, from /proc.

`python bench/cpu_per_request.py --before DIR [--after DIR] [--rounds 4] [--seconds 10]
[--connections 32]` starts nginx (the instant upstream of bench/run.py) and, per mode, a
gateway from each checkout (`PYTHONPATH=DIR python -m gateway serve`, metering on into its own
scratch Postgres database, as in the compare scenario), then drives them in turn with wrk,
interleaved round by round, and reads each gateway's utime + stime from /proc/PID/stat around
its run. CPU time per request is what the gateway itself spent, so time the shared box's other
jobs took from it is left out (their cache and frequency effects are not); requests/s on a
loaded box is not. Prints per round and the medians, after / before per mode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py: nginx, wrk, scratch databases, supervisor

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its reaped children (uvicorn serves in-process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--modes", default="non-stream,stream")
    p.add_argument("--database-url", default=run.DEFAULT_DATABASE)
    opts = p.parse_args()
    pin = run.Pinning.detect(True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sides = {"before": opts.before.resolve(), "after": opts.after.resolve()}
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sup = run.Supervisor(Path(tmp))
        ports = run.UpstreamPorts.pick()
        try:
            run.start_nginx(pin, sup, ports)
            for mode in opts.modes.split(","):
                upstream = ports.sse if mode == "stream" else ports.json
                dbs = {side: run.ScratchDatabase(opts.database_url) for side in sides}
                for db in dbs.values():
                    db.create()
                try:
                    children: dict[str, tuple[run.Child, int]] = {}
                    for side, checkout in sides.items():
                        run_dir = Path(tmp) / f"{mode}-{side}"
                        run_dir.mkdir()
                        config = run_dir / "gateway.yaml"
                        config.write_text(run.config_yaml(
                            {"metering": run.metering_config(run_dir, True)}))
                        env = run.server_env("gateway", f"http://127.0.0.1:{upstream}")
                        env["DATABASE_URL"] = dbs[side].url
                        env["PYTHONPATH"] = str(checkout)
                        port = run.free_port()
                        argv = [*pin.server, sys.executable, "-m", "gateway", "serve", "--host",
                                "127.0.0.1", "--port", str(port), "--config", str(config)]
                        child = sup.start(f"gateway-{mode}-{side}", argv, env, cwd=run_dir)
                        run.wait_ready(child, port, "/healthz")
                        children[side] = (child, port)
                    for _, port in children.values():  # warm-up
                        run.run_wrk(pin, run.chat_url(port), mode, opts.connections, 2)
                    for i in range(opts.rounds):
                        order = list(children.items())
                        if i % 2:
                            order.reverse()
                        for side, (child, port) in order:
                            began = cpu_seconds(child.proc.pid)
                            done = run.run_wrk(pin, run.chat_url(port), mode, opts.connections,
                                               opts.seconds)
                            spent = cpu_seconds(child.proc.pid) - began
                            per = spent / (done.rps * opts.seconds) * 1e6
                            results.setdefault(f"{mode}/{side}", []).append(per)
                            print(f"{mode:10} round {i + 1} {side:6} {done.rps:8.1f} req/s "
                                  f"{per:7.1f} us CPU per request", flush=True)
                    for child, _ in children.values():
                        sup.stop(child)
                finally:
                    for db in dbs.values():
                        db.drop()
        finally:
            sup.stop_all()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n| mode | before us CPU / request | after us CPU / request | after / before "
          "(median of per-round ratios, min-max) |\n|---|---:|---:|---:|")
    for mode in opts.modes.split(","):
        before, after = results[f"{mode}/before"], results[f"{mode}/after"]
        ratios = [a / b for a, b in zip(after, before, strict=True)]
        print(f"| {mode} | {statistics.median(before):.1f} | {statistics.median(after):.1f} | "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
