"""One command for the gateway's overhead benchmark: `python bench/run.py [--duration 10]`.

It starts an instant upstream (nginx with canned answers), the raw aiohttp forwarder (the Python
floor) and the gateway, drives each with wrk at 1 and 32 connections, streaming and not, and
writes bench/RESULTS.md. The raw forwarder is the yardstick rather than nginx: it shows what any
Python server on this machine pays, so the ratio to it is the gateway's own cost. See
bench/README.md for how to read the numbers.

`python bench/run.py --scenario failover` instead measures what failover costs: a two-provider
gateway whose primary answers 503 to about half of the requests, with the breaker held off and
with default breaker settings, against the same gateway with a healthy primary; it writes
bench/RESULTS-failover.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml  # the gateway's own dependency: run.py runs with the project's venv

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TARGETS = ("direct", "raw", "gateway")
MODES = ("non-stream", "stream")
Mode = Literal["non-stream", "stream"]
SCENARIOS = ("overhead", "failover")
Scenario = Literal["overhead", "failover"]
THROUGHPUT_TARGET = 0.6  # gateway rps / raw-forwarder rps at 32 connections, at least
LATENCY_TARGET_MS = 0.5  # gateway p50 - raw-forwarder p50 at 1 connection, at most
REQUEST_BODY: dict[str, Any] = {
    "model": "deepseek-v4-flash",
    "messages": [{"role": "user", "content": "Say hi"}],
}


# The failover scenario: three gateways, the same two providers for deepseek-v4-flash, differing
# in where the primary points and in the breaker settings. Measured non-streaming only: an
# upstream 503 arrives before any byte of the answer, so failover happens the same way for both.
HEALTHY, BREAKER_OFF, BREAKER_ON = "healthy", "failover, breaker off", "failover, breaker on"
FAILOVER_VARIANTS = (HEALTHY, BREAKER_OFF, BREAKER_ON)
# Never opens: 1e6 consecutive failures or requests per 30 s window are out of reach here, and a
# 100% failure ratio is never met by a primary that fails half the time.
BREAKER_HELD_OFF: dict[str, Any] = {
    "consecutive_failures": 1_000_000,
    "failure_ratio": 1.0,
    "min_requests": 1_000_000,
}
FAIL_SAMPLE = 400  # requests sent straight to the failing port to check its failure rate
FAIL_RATE_BOUNDS = (0.35, 0.65)  # outside this the failing port is not "about half"


class BenchError(Exception):
    """A setup failure that stops the benchmark with a message instead of a traceback."""


# ---------------------------------------------------------------------------- canned upstream


def canned_completion() -> dict[str, Any]:
    """A DeepSeek-style non-streaming answer carrying every usage field the gateway reads."""
    return {
        "id": "bench-0001",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "deepseek-v4-flash",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hi! How can I help you today?",
                    "reasoning_content": "The user greets me. A short friendly reply fits.",
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 24,
            "total_tokens": 36,
            "prompt_tokens_details": {"cached_tokens": 0},
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": 12,
            "completion_tokens_details": {"reasoning_tokens": 14},
        },
        "system_fingerprint": "fp_bench",
    }


def canned_sse() -> str:
    """A DeepSeek-style stream: reasoning, ten content pieces, a finish chunk, usage, [DONE]."""
    base = {
        "id": "bench-0001",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "deepseek-v4-flash",
        "system_fingerprint": "fp_bench",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    pieces = ["Hi", "!", " How", " can", " I", " help", " you", " today", "?", " :)"]
    events = [chunk({"role": "assistant", "content": None, "reasoning_content": "A greeting."})]
    events += [chunk({"content": piece}) for piece in pieces]
    events.append(chunk({"content": ""}, finish="stop"))
    events.append({**base, "choices": [], "usage": canned_completion()["usage"]})
    lines = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events]
    return "".join(lines) + "data: [DONE]\n\n"


def overloaded_error() -> dict[str, Any]:
    """DeepSeek's body for a 503: the failing primary sends it for about half of the requests."""
    return {
        "error": {
            "message": "Server overloaded",
            "type": "api_error",
            "param": None,
            "code": None,
        }
    }


def nginx_quote(text: str) -> str:
    """Escape for a single-quoted nginx string; `$` would start a variable, so refuse it."""
    if "$" in text:
        raise ValueError("canned bodies must not contain '$' (nginx variable syntax)")
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


@dataclass(frozen=True)
class UpstreamPorts:
    """nginx's ports: canned JSON, canned SSE, and JSON that fails about half the time."""

    json: int
    sse: int
    failing: int

    @classmethod
    def pick(cls) -> UpstreamPorts:
        return cls(free_port(), free_port(), free_port())


def write_nginx_conf(run_dir: Path, ports: UpstreamPorts) -> Path:
    """Fill the template; every path nginx writes to lives under run_dir."""
    template = (BENCH_DIR / "nginx.conf.template").read_text()
    values = {
        "DIR": str(run_dir),
        "JSON_PORT": str(ports.json),
        "SSE_PORT": str(ports.sse),
        "FAIL_PORT": str(ports.failing),
        "JSON_BODY": nginx_quote(json.dumps(canned_completion(), separators=(",", ":"))),
        "SSE_BODY": nginx_quote(canned_sse()),
        "ERROR_BODY": nginx_quote(json.dumps(overloaded_error(), separators=(",", ":"))),
    }
    conf = re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], template)
    path = run_dir / "nginx.conf"
    path.write_text(conf)
    return path


# ---------------------------------------------------------------------------- processes


@dataclass
class Child:
    """A server we started, in its own process group so its whole tree can be stopped."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Supervisor:
    """Owns every child process; `stop_all` runs from a finally, so Ctrl-C leaves nothing."""

    run_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        log = self.run_dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO_DIR,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self, child: Child) -> None:
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGTERM)
            try:
                child.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait(timeout=5)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(child: Child, port: int, health_path: str | None, timeout: float = 30.0) -> None:
    """Wait for a TCP accept (or a 200 from health_path); fail early if the child died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise BenchError(
                f"{child.name} exited with code {child.proc.returncode} before it was ready;"
                f" log tail:\n{child.log_tail()}"
            )
        try:
            if health_path is None:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            else:
                url = f"http://127.0.0.1:{port}{health_path}"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise BenchError(f"{child.name} not ready after {timeout:.0f}s; log tail:\n{child.log_tail()}")


@dataclass(frozen=True)
class Pinning:
    """CPU 0 for the server under test, CPU 1 for wrk and nginx, so they don't steal its core."""

    server: tuple[str, ...]
    load: tuple[str, ...]

    @classmethod
    def detect(cls, enabled: bool) -> Pinning:
        taskset = shutil.which("taskset")
        if enabled and taskset and (os.cpu_count() or 1) >= 2:
            return cls((taskset, "-c", "0"), (taskset, "-c", "1"))
        return cls((), ())

    @property
    def active(self) -> bool:
        return bool(self.server)


# ---------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_text: str


@dataclass
class Row:
    target: str
    mode: Mode
    connections: int
    runs: list[WrkRun] = field(default_factory=list)
    failure: str = ""

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def p50(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def error_text(self) -> str:
        return "; ".join(r.error_text for r in self.runs if r.error_text)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if not match:
        raise ValueError(f"unrecognised wrk time {value!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkRun:
    """Pull requests/s, the 50%/99% latency lines and every kind of error out of wrk's text."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (rps and p50 and p99):
        raise BenchError(f"could not parse wrk output:\n{output}")
    errors, parts = 0, []
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sock:
        counts = dict(
            zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        )
        errors += sum(counts.values())
        parts += [f"{k} {v}" for k, v in counts.items() if v]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
        parts.append(f"non-2xx {non2xx.group(1)}")
    return WrkRun(
        float(rps.group(1)), to_ms(p50.group(1)), to_ms(p99.group(1)), errors, ", ".join(parts)
    )


def run_wrk(pinning: Pinning, url: str, mode: Mode, connections: int, seconds: float) -> WrkRun:
    argv = [
        *pinning.load,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH_DIR / "post.lua"),
        url,
    ]
    if mode == "stream":
        argv += ["--", "stream"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def check_answer(url: str, mode: Mode) -> None:
    """One real request first, so a server answering fast with garbage can't post a result."""
    body = {**REQUEST_BODY, "stream": True} if mode == "stream" else REQUEST_BODY
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-bench"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            ctype, text = resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise BenchError(f"{url} answered {exc.code}: {exc.read()[:500]!r}") from None
    except OSError as exc:
        raise BenchError(f"{url} did not answer: {exc}") from None
    if mode == "stream":
        ok = ctype.startswith("text/event-stream") and "data: [DONE]" in text and "Hi" in text
    else:
        try:
            ok = bool(json.loads(text)["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            ok = False
    if not ok:
        raise BenchError(f"{url} gave an unexpected {mode} answer ({ctype}): {text[:500]!r}")


# ---------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class Options:
    duration: float
    warmup: float
    repeats: int
    targets: tuple[str, ...]
    modes: tuple[Mode, ...]
    connections: tuple[int, ...]
    pin: bool
    output: Path
    scenario: Scenario


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="overhead",
        help="overhead (default: direct/raw/gateway, writes RESULTS.md) or failover (a primary "
        "failing ~50%% against a healthy one, writes RESULTS-failover.md)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell; median reported")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up, 1 repeat")
    parser.add_argument("--targets", help="subset of direct,raw,gateway (overhead only)")
    parser.add_argument("--modes", help="subset of non-stream,stream (overhead only)")
    parser.add_argument("--connections", default="1,32", help="comma-separated wrk -c values")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument(
        "--output", type=Path, help="default bench/RESULTS.md, or bench/RESULTS-failover.md"
    )
    ns = parser.parse_args(argv)
    scenario: Scenario = ns.scenario
    if scenario == "failover" and (ns.targets or ns.modes):
        parser.error("--targets and --modes apply to the overhead scenario only")
    targets = tuple(t for t in (ns.targets or ",".join(TARGETS)).split(",") if t)
    modes = tuple(m for m in (ns.modes or ",".join(MODES)).split(",") if m)
    default_output = "RESULTS.md" if scenario == "overhead" else "RESULTS-failover.md"
    if bad := [t for t in targets if t not in TARGETS] + [m for m in modes if m not in MODES]:
        parser.error(f"unknown target/mode: {', '.join(bad)}")
    duration, warmup, repeats = ns.duration, ns.warmup, ns.repeats
    if ns.quick:
        duration, warmup, repeats = 3.0, 1.0, 1
    return Options(
        duration=duration,
        warmup=warmup,
        repeats=max(1, repeats),
        targets=targets,
        modes=tuple(m for m in MODES if m in modes),  # type: ignore[misc]
        connections=tuple(int(c) for c in ns.connections.split(",") if c),
        pin=not ns.no_pin,
        output=ns.output or BENCH_DIR / default_output,
        scenario=scenario,
    )


def require_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        raise BenchError(
            f"missing {' and '.join(missing)}; install with: apt-get install nginx-light wrk"
        )


def python_server_argv(pinning: Pinning, port: int, target: str) -> list[str]:
    if target == "raw":
        return [
            *pinning.server,
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench.raw_forwarder:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--workers",
            "1",
        ]
    gateway = Path(sys.executable).parent / "gateway"
    if not gateway.exists():
        raise BenchError(f"{gateway} not found; install the project into this venv")
    return [*pinning.server, str(gateway), "serve", "--host", "127.0.0.1", "--port", str(port)]


def server_env(target: str, upstream_base: str) -> dict[str, str]:
    """The gateway sees only DeepSeek (at nginx) and no master key, so loopback needs no key."""
    env = dict(os.environ)
    for name in ("OPENROUTER_API_KEY", "OLLAMA_API_KEY", "GATEWAY_MASTER_KEY"):
        env.pop(name, None)
    if target == "raw":
        env["UPSTREAM_URL"] = f"{upstream_base}/chat/completions"
    else:
        env["DEEPSEEK_API_KEY"] = "sk-bench"
        env["DEEPSEEK_BASE_URL"] = upstream_base
    return env


def measure(opts: Options, pinning: Pinning, row: Row, url: str) -> None:
    """Warm up, then `repeats` wrk runs; a failure is kept on the row, never hidden."""
    label = f"{row.target:8} {row.mode:10} c={row.connections:<3}"
    try:
        check_answer(url, row.mode)
        if opts.warmup > 0:
            run_wrk(pinning, url, row.mode, row.connections, opts.warmup)
        for i in range(opts.repeats):
            run = run_wrk(pinning, url, row.mode, row.connections, opts.duration)
            row.runs.append(run)
            flag = f"  !! ERRORS: {run.error_text}" if run.errors else ""
            print(
                f"  {label} run {i + 1}: {run.rps:>10.1f} req/s  p50 {run.p50_ms:.3f} ms"
                f"  p99 {run.p99_ms:.3f} ms{flag}",
                flush=True,
            )
    except BenchError as exc:
        row.failure = str(exc)
        print(f"  {label} FAILED: {exc}", file=sys.stderr, flush=True)


def run_mode(
    opts: Options, pinning: Pinning, sup: Supervisor, mode: Mode, upstream_port: int
) -> list[Row]:
    """Start the Python servers against this mode's upstream, measure every target, stop them."""
    upstream_base = f"http://127.0.0.1:{upstream_port}"
    urls: dict[str, str] = {"direct": f"{upstream_base}/v1/chat/completions"}
    startup_failures: dict[str, str] = {}
    started: list[Child] = []
    try:
        for target in ("raw", "gateway"):
            if target not in opts.targets:
                continue
            port = free_port()
            try:
                child = sup.start(
                    f"{target}-{mode}",
                    python_server_argv(pinning, port, target),
                    server_env(target, upstream_base),
                )
                started.append(child)
                wait_ready(child, port, "/healthz" if target == "gateway" else None)
            except BenchError as exc:
                startup_failures[target] = str(exc)
                print(f"!! {target} ({mode}) did not start: {exc}", file=sys.stderr, flush=True)
                continue
            urls[target] = f"http://127.0.0.1:{port}/v1/chat/completions"
        rows = []
        for target in opts.targets:
            for connections in opts.connections:
                row = Row(target, mode, connections)
                if target in startup_failures:
                    row.failure = f"did not start: {startup_failures[target]}"
                else:
                    measure(opts, pinning, row, urls[target])
                rows.append(row)
        return rows
    finally:
        for child in started:
            sup.stop(child)


def start_nginx(pinning: Pinning, sup: Supervisor, ports: UpstreamPorts) -> None:
    conf = write_nginx_conf(sup.run_dir, ports)
    argv = [
        *pinning.load,
        "nginx",
        "-p",
        str(sup.run_dir),
        "-c",
        str(conf),
        "-e",
        str(sup.run_dir / "error.log"),
        "-g",
        "daemon off;",
    ]
    child = sup.start("nginx", argv)
    for port in (ports.json, ports.sse, ports.failing):
        wait_ready(child, port, None)


# ---------------------------------------------------------------------------- report


def command_line(argv: list[str], any_status: bool = False) -> str:
    """First line of a tool's output (stdout or stderr), or "" if it failed (`wrk -v` exits 1)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        if out.returncode == 0 or any_status:
            return ((out.stdout + out.stderr).strip().splitlines() or [""])[0]
    return ""


def machine_facts() -> dict[str, str]:
    """Taken before the run: the load average tells a reader how noisy the box was."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    git = ["git", "-C", str(REPO_DIR)]
    commit = command_line([*git, "rev-parse", "--short", "HEAD"]) or "no commit yet"
    if command_line([*git, "status", "--porcelain", "--", "gateway"]):
        commit += " (gateway/ has uncommitted changes)"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "nginx": command_line(["nginx", "-v"]).removeprefix("nginx version: ") or "unknown",
        "wrk": command_line(["wrk", "-v"], any_status=True).split(" [")[0] or "unknown",
        "repository": commit,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def find_row(rows: list[Row], target: str, mode: str, connections: int) -> Row | None:
    for row in rows:
        if (row.target, row.mode, row.connections) == (target, mode, connections):
            return row if row.runs and not row.failure else None
    return None


def verdicts(rows: list[Row]) -> list[str]:
    """The two targets from the issue, per mode, as PASS/MISS lines (or why they are missing)."""
    lines = []
    for mode in MODES:
        gw32, raw32 = find_row(rows, "gateway", mode, 32), find_row(rows, "raw", mode, 32)
        if gw32 and raw32:
            ratio = gw32.rps / raw32.rps
            verdict = "PASS" if ratio >= THROUGHPUT_TARGET else "MISS"
            lines.append(
                f"- {mode}, 32 connections: gateway rps / raw rps = {gw32.rps:.0f} / "
                f"{raw32.rps:.0f} = **{ratio:.2f}** (target >= {THROUGHPUT_TARGET}): "
                f"**{verdict}**"
            )
        else:
            lines.append(f"- {mode}, 32 connections: throughput ratio not measured")
        gw1, raw1 = find_row(rows, "gateway", mode, 1), find_row(rows, "raw", mode, 1)
        if gw1 and raw1:
            delta = gw1.p50 - raw1.p50
            verdict = "PASS" if delta <= LATENCY_TARGET_MS else "MISS"
            lines.append(
                f"- {mode}, 1 connection: gateway p50 - raw p50 = {gw1.p50:.3f} - "
                f"{raw1.p50:.3f} = **{delta:+.3f} ms** (target <= {LATENCY_TARGET_MS} "
                f"ms): **{verdict}**"
            )
        else:
            lines.append(f"- {mode}, 1 connection: p50 difference not measured")
    return lines


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| target | mode | connections | requests/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        head = f"| {row.target} | {row.mode} | {row.connections} "
        if row.failure or not row.runs:
            reason = row.failure.splitlines()[0] if row.failure else "no runs"
            lines.append(head + f"| - | - | - | **FAILED: {reason}** |")
            continue
        errors = f"**{row.errors} ({row.error_text})**" if row.errors else "0"
        lines.append(head + f"| {row.rps:,.0f} | {row.p50:.3f} | {row.p99:.3f} | {errors} |")
    return lines


def run_facts(
    opts: Options, pinning: Pinning, command: str, started: datetime, facts: dict[str, str]
) -> list[str]:
    """The bullet list under a report's title: when, where, what command, how measured."""
    pin_note = (
        "server under test pinned to CPU 0; wrk and nginx pinned to CPU 1 (taskset)"
        if pinning.active
        else "no CPU pinning (taskset missing, < 2 CPUs or --no-pin)"
    )
    return [
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        *[f"- {k}: {v}" for k, v in facts.items()],
        f"- command: `{command}`",
        f"- per cell: {opts.warmup:g} s warm-up, then {opts.repeats} x {opts.duration:g} s wrk "
        f"runs (`wrk -t1 -cN --latency -s bench/post.lua`); the table shows the median of the "
        f"runs' requests/s, p50 and p99, and the sum of their errors",
        f"- pinning: {pin_note}",
    ]


def failure_details(rows: list[Row]) -> list[str]:
    """A "## Failures" section with each failed cell's whole message, or nothing."""
    failures = [r for r in rows if r.failure]
    if not failures:
        return []
    lines = ["## Failures", ""]
    for row in failures:
        lines += [
            f"- {row.target} {row.mode} c={row.connections}:",
            "",
            "```",
            row.failure,
            "```",
            "",
        ]
    return lines


def report(
    opts: Options,
    pinning: Pinning,
    rows: list[Row],
    command: str,
    started: datetime,
    facts: dict[str, str],
) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py`; see bench/README.md for what is measured and how to read it.",
        "",
        *run_facts(opts, pinning, command, started, facts),
        "",
        "## Results",
        "",
        *table(rows),
        "",
        "## Targets",
        "",
        *verdicts(rows),
        "",
    ]
    if any(row.errors or row.failure for row in rows):
        lines += [
            "**Warning: some cells had errors or failed; their numbers are not to be trusted.**",
            "",
        ]
    lines += failure_details(rows)
    return "\n".join(lines)


# ---------------------------------------------------------------------------- failover scenario


@dataclass(frozen=True)
class FailRate:
    """What the failing port answered when asked directly."""

    failed: int
    total: int

    @property
    def ratio(self) -> float:
        return self.failed / self.total


def sample_fail_rate(port: int, n: int = FAIL_SAMPLE) -> FailRate:
    """Ask the failing port directly: each answer must be the DeepSeek 503 body or a completion,
    and about half must be the 503, or the scenario would not measure what it says."""
    url = f"http://127.0.0.1:{port}/chat/completions"
    data = json.dumps(REQUEST_BODY).encode()
    failed = 0
    for _ in range(n):
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                body = json.loads(resp.read())
            if not body["choices"][0]["message"]["content"]:
                raise BenchError(f"failing port {port} answered 200 without content: {body!r}")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            if exc.code != 503 or json.loads(raw) != overloaded_error():
                raise BenchError(
                    f"failing port {port} answered {exc.code}: {raw[:300]!r}"
                ) from None
            failed += 1
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise BenchError(f"failing port {port} gave an unexpected answer: {exc}") from None
    rate = FailRate(failed, n)
    low, high = FAIL_RATE_BOUNDS
    if not low <= rate.ratio <= high:
        raise BenchError(
            f"failing port {port}: {failed}/{n} answers were 503, not about half "
            f"(accepted {low:.0%}-{high:.0%})"
        )
    return rate


def failover_config(variant: str, ports: UpstreamPorts) -> dict[str, Any]:
    """The gateway's config file for one variant: primary `deepseek`, secondary `backup`, both
    DeepSeek-kind. Only the primary's port and the breaker differ between variants."""
    primary = ports.json if variant == HEALTHY else ports.failing
    config: dict[str, Any] = {
        "providers": {
            "deepseek": {
                "kind": "deepseek",
                "base_url": f"http://127.0.0.1:{primary}",
                "api_key": "sk-bench",
            },
            "backup": {
                "kind": "deepseek",
                "base_url": f"http://127.0.0.1:{ports.json}",
                "api_key": "sk-bench",
                "models": {"deepseek-v4-flash": "deepseek-v4-flash"},
            },
        },
        "routes": {"deepseek-v4-flash": [{"provider": "deepseek"}, {"provider": "backup"}]},
    }
    if variant == BREAKER_OFF:
        config["routing"] = {"breaker": BREAKER_HELD_OFF}
    return config


def config_yaml(config: dict[str, Any]) -> str:
    text: str = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    return text


def failover_env() -> dict[str, str]:
    """Everything comes from the config file: no provider key, base URL, master key or Redis
    (the breaker stays in-process) leaks in from the caller's environment."""
    env = dict(os.environ)
    for name in (
        "DEEPSEEK_API_KEY",
        "DEEPSEEK_BASE_URL",
        "OPENROUTER_API_KEY",
        "OLLAMA_API_KEY",
        "GATEWAY_MASTER_KEY",
        "REDIS_URL",
    ):
        env.pop(name, None)
    return env


_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
Labels = tuple[tuple[str, str], ...]


def scrape(port: int) -> dict[tuple[str, Labels], float]:
    """The gateway's /metrics as {(name, sorted labels): value}; empty if it did not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    samples: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = tuple(sorted(_LABEL.findall(match.group(2) or "")))
            with contextlib.suppress(ValueError):
                samples[(match.group(1), labels)] = float(match.group(3))
    return samples


@dataclass(frozen=True)
class Traffic:
    """What the gateway did during one cell (check, warm-up and runs), from /metrics deltas."""

    requests: int
    client_errors: int
    primary_ok: int
    primary_failed: int
    backup_ok: int
    backup_failed: int
    breaker_after: str

    @classmethod
    def between(
        cls, before: dict[tuple[str, Labels], float], after: dict[tuple[str, Labels], float]
    ) -> Traffic | None:
        if not after:
            return None

        def total(name: str, **want: str) -> int:
            value = 0.0
            for (metric, labels), count in after.items():
                if metric == name and all((k, v) in labels for k, v in want.items()):
                    value += count - before.get((metric, labels), 0.0)
            return round(value)

        def attempts(provider: str) -> tuple[int, int]:
            every = total("gateway_upstream_attempts_total", provider=provider)
            ok = total("gateway_upstream_attempts_total", provider=provider, outcome="200")
            return ok, every - ok

        requests = total("gateway_requests_total")
        primary_ok, primary_failed = attempts("deepseek")
        backup_ok, backup_failed = attempts("backup")
        states = {0: "closed", 1: "half-open", 2: "open"}
        state = next(
            (
                states.get(round(value), str(value))
                for (metric, labels), value in after.items()
                if metric == "gateway_breaker_state" and ("provider", "deepseek") in labels
            ),
            "unknown",
        )
        return cls(
            requests=requests,
            client_errors=requests - total("gateway_requests_total", status="ok"),
            primary_ok=primary_ok,
            primary_failed=primary_failed,
            backup_ok=backup_ok,
            backup_failed=backup_failed,
            breaker_after=state,
        )


@dataclass
class FailoverCell:
    row: Row
    traffic: Traffic | None = None


def start_variant(
    pinning: Pinning, sup: Supervisor, variant: str, ports: UpstreamPorts
) -> int:
    """Start a gateway with this variant's config file; its port once /healthz answers."""
    slug = re.sub(r"\W+", "-", variant).strip("-")
    config_path = sup.run_dir / f"gateway-{slug}.yaml"
    config_path.write_text(config_yaml(failover_config(variant, ports)))
    port = free_port()
    argv = [*python_server_argv(pinning, port, "gateway"), "--config", str(config_path)]
    child = sup.start(f"gateway-{slug}", argv, failover_env())
    wait_ready(child, port, "/healthz")
    return port


def run_failover_cells(
    opts: Options, pinning: Pinning, sup: Supervisor, ports: UpstreamPorts
) -> list[FailoverCell]:
    """All three gateways run side by side (idle ones cost nothing) and their wrk runs are
    interleaved: run 1 of each variant, then run 2 of each, ... A box whose speed drifts by tens
    of percent over minutes (a shared 2-core VM does) then shifts every variant alike instead of
    posing as a failover cost."""
    cells = {
        (v, c): FailoverCell(Row(v, "non-stream", c))
        for v in FAILOVER_VARIANTS
        for c in opts.connections
    }
    gateway_ports: dict[str, int] = {}
    for variant in FAILOVER_VARIANTS:
        try:
            gateway_ports[variant] = start_variant(pinning, sup, variant, ports)
        except BenchError as exc:
            print(f"!! gateway ({variant}) did not start: {exc}", file=sys.stderr, flush=True)
            for c in opts.connections:
                cells[(variant, c)].row.failure = f"did not start: {exc}"

    def url(variant: str) -> str:
        return f"http://127.0.0.1:{gateway_ports[variant]}/v1/chat/completions"

    def label(row: Row) -> str:
        return f"{row.target:21} c={row.connections:<3}"

    def fail(row: Row, exc: BenchError) -> None:
        row.failure = str(exc)
        print(f"  {label(row)} FAILED: {exc}", file=sys.stderr, flush=True)

    for c in opts.connections:
        print(f"== {c} connection{'s' if c != 1 else ''}", flush=True)
        live = [v for v in FAILOVER_VARIANTS if v in gateway_ports]
        before = {v: scrape(gateway_ports[v]) for v in live}
        for variant in live:
            row = cells[(variant, c)].row
            try:
                check_answer(url(variant), "non-stream")
                if opts.warmup > 0:
                    run_wrk(pinning, url(variant), "non-stream", c, opts.warmup)
            except BenchError as exc:
                fail(row, exc)
        for i in range(opts.repeats):
            for variant in live:
                row = cells[(variant, c)].row
                if row.failure:
                    continue
                try:
                    run = run_wrk(pinning, url(variant), "non-stream", c, opts.duration)
                except BenchError as exc:
                    fail(row, exc)
                    continue
                row.runs.append(run)
                flag = f"  !! ERRORS: {run.error_text}" if run.errors else ""
                print(
                    f"  {label(row)} run {i + 1}: {run.rps:>10.1f} req/s  p50 {run.p50_ms:.3f}"
                    f" ms  p99 {run.p99_ms:.3f} ms{flag}",
                    flush=True,
                )
        for variant in live:
            cell = cells[(variant, c)]
            cell.traffic = Traffic.between(before[variant], scrape(gateway_ports[variant]))
    return [cells[(v, c)] for v in FAILOVER_VARIANTS for c in opts.connections]


def cell_of(cells: list[FailoverCell], variant: str, connections: int) -> FailoverCell | None:
    for cell in cells:
        if (cell.row.target, cell.row.connections) == (variant, connections):
            return cell
    return None


def failover_table(cells: list[FailoverCell]) -> list[str]:
    lines = [
        "| variant | connections | requests/s | p50 ms | p99 ms | client errors |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for cell in cells:
        row = cell.row
        head = f"| {row.target} | {row.connections} "
        if row.failure or not row.runs:
            reason = row.failure.splitlines()[0] if row.failure else "no runs"
            lines.append(head + f"| - | - | - | **FAILED: {reason}** |")
            continue
        errors = f"**{row.errors} ({row.error_text})**" if row.errors else "0"
        lines.append(head + f"| {row.rps:,.0f} | {row.p50:.3f} | {row.p99:.3f} | {errors} |")
    return lines


def ratio_table(cells: list[FailoverCell], connections: Sequence[int]) -> list[str]:
    """Each failover variant over the healthy baseline, at the same connection count."""
    lines = [
        "| variant / healthy | connections | requests/s | p50 | p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in (BREAKER_OFF, BREAKER_ON):
        for c in connections:
            base, cell = cell_of(cells, HEALTHY, c), cell_of(cells, variant, c)
            usable = [x for x in (base, cell) if x and x.row.runs and not x.row.failure]
            if len(usable) < 2 or base is None or cell is None:
                lines.append(f"| {variant} | {c} | not measured | | |")
                continue
            b, r = base.row, cell.row
            lines.append(
                f"| {variant} | {c} | **{r.rps / b.rps:.2f}** | {r.p50 / b.p50:.2f} "
                f"| {r.p99 / b.p99:.2f} |"
            )
    return lines


def traffic_table(cells: list[FailoverCell]) -> list[str]:
    lines = [
        "| variant | connections | requests | to primary | primary failed | to backup "
        "| backup failed | answered with an error | primary breaker after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for cell in cells:
        t, row = cell.traffic, cell.row
        head = f"| {row.target} | {row.connections} "
        if t is None:
            lines.append(head + "| /metrics not read | | | | | | |")
            continue
        share = f" ({(t.primary_ok + t.primary_failed) / t.requests:.1%})" if t.requests else ""
        errors = f"**{t.client_errors}**" if t.client_errors else "0"
        lines.append(
            head + f"| {t.requests:,} | {t.primary_ok + t.primary_failed:,}{share} "
            f"| {t.primary_failed:,} | {t.backup_ok + t.backup_failed:,} | {t.backup_failed:,} "
            f"| {errors} | {t.breaker_after} |"
        )
    return lines


def leak_lines(cells: list[FailoverCell]) -> list[str]:
    """Failover must hide the primary's 503s: any non-2xx a client saw is called out."""
    leaks = [
        c.row for c in cells if c.row.errors or (c.traffic is not None and c.traffic.client_errors)
    ]
    if not leaks:
        measured = [c for c in cells if c.row.runs and not c.row.failure]
        return [
            f"- PASS: every measured run ({sum(len(c.row.runs) for c in measured)} wrk runs in "
            f"{len(measured)} cells) had zero non-2xx responses and zero socket errors; /metrics "
            "counted no request answered with an error."
        ]
    lines = ["**FAILOVER LEAKED ERRORS TO CLIENTS** (or sockets failed):", ""]
    for row in leaks:
        cell = cell_of(cells, row.target, row.connections)
        server = cell.traffic.client_errors if cell and cell.traffic else "?"
        lines.append(
            f"- **{row.target}, c={row.connections}: wrk {row.errors} ({row.error_text or '-'}); "
            f"gateway answered {server} requests with an error**"
        )
    return lines


def failover_report(
    opts: Options,
    pinning: Pinning,
    cells: list[FailoverCell],
    rate: FailRate,
    configs: dict[str, dict[str, Any]],
    header: list[str],
) -> str:
    rows = [c.row for c in cells]
    lines = [
        "# Failover benchmark results",
        "",
        "Written by `bench/run.py --scenario failover`; see bench/README.md (\"Failover "
        "scenario\") for what is measured and how to read it.",
        "",
        *header,
        "- mode: non-streaming only (the 503 comes before any byte of an answer)",
        f"- failing primary, checked directly before the run: {rate.failed}/{rate.total} = "
        f"{rate.ratio:.1%} answered 503 `{json.dumps(overloaded_error(), separators=(',', ':'))}`"
        ", the rest the canned completion",
        "",
        "Variants (one gateway each, the same two providers for deepseek-v4-flash, routes "
        "`[deepseek, backup]`; configs below):",
        "",
        f"- **{HEALTHY}**: primary and backup both at the canned-completion port; default "
        "breaker.",
        f"- **{BREAKER_OFF}**: primary at the port failing ~50%; breaker held off "
        f"(`{json.dumps(BREAKER_HELD_OFF)}`), so every request tries the primary and about "
        "half fail over to the backup. This is the cost of failover.",
        f"- **{BREAKER_ON}**: primary at the failing port; default breaker settings.",
        "",
        "## Results",
        "",
        *failover_table(cells),
        "",
        "## Failover over healthy",
        "",
        "Ratios of the medians: requests/s below 1 and latency above 1 are the price of "
        "failover.",
        "",
        *ratio_table(cells, opts.connections),
        "",
        "## Leaks",
        "",
        *leak_lines(cells),
        "",
        "## What the gateway did",
        "",
        "From the gateway's /metrics, read before and after each cell, so the counts cover the "
        "check request and the warm-up as well as the measured runs. \"to primary\" is upstream "
        "attempts at the primary (share of client requests in brackets); \"primary breaker "
        "after\" is its state when the cell ended.",
        "",
        *traffic_table(cells),
        "",
    ]
    if any(row.errors or row.failure for row in rows):
        lines += [
            "**Warning: some cells had errors or failed; their numbers are not to be trusted.**",
            "",
        ]
    lines += failure_details(rows)
    lines += ["## Gateway configs", ""]
    for variant, config in configs.items():
        lines += [
            f"{variant} (`gateway serve --config FILE`, merged over gateway/defaults.yaml):",
            "",
            "```yaml",
            config_yaml(config).rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(lines)


def failover_main(
    opts: Options, pinning: Pinning, command: str, started: datetime, facts: dict[str, str]
) -> int:
    """The failover scenario end to end: nginx, the fail-rate check, three gateways, report."""
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp:
        sup = Supervisor(Path(tmp))
        try:
            ports = UpstreamPorts.pick()
            start_nginx(pinning, sup, ports)
            rate = sample_fail_rate(ports.failing)
            print(
                f"failing port: {rate.failed}/{rate.total} = {rate.ratio:.1%} answered 503",
                flush=True,
            )
            configs = {v: failover_config(v, ports) for v in FAILOVER_VARIANTS}
            cells = run_failover_cells(opts, pinning, sup, ports)
        finally:
            sup.stop_all()
    header = run_facts(opts, pinning, command, started, facts)
    text = failover_report(opts, pinning, cells, rate, configs, header)
    opts.output.write_text(text)
    print()
    for lines in (
        failover_table(cells),
        ratio_table(cells, opts.connections),
        traffic_table(cells),
        leak_lines(cells),
    ):
        print("\n".join(lines))
        print()
    print(f"written to {opts.output}")
    rows = [c.row for c in cells]
    leaked = any(c.traffic is not None and c.traffic.client_errors for c in cells)
    if leaked or any(row.errors or row.failure for row in rows):
        print(
            "!! some cells had errors, leaked non-2xx responses or failed; see the report",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(args)
    command = shlex.join(["python", "bench/run.py", *args])
    started = datetime.now(UTC)
    require_tools()
    facts = machine_facts()
    pinning = Pinning.detect(opts.pin)
    # SIGTERM (and SIGINT, even if a parent shell ignored it) clean up through the finally.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    if opts.scenario == "failover":
        return failover_main(opts, pinning, command, started, facts)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp:
        sup = Supervisor(Path(tmp))
        try:
            upstream = UpstreamPorts.pick()
            ports = {"non-stream": upstream.json, "stream": upstream.sse}
            start_nginx(pinning, sup, upstream)
            for mode in opts.modes:
                print(f"== {mode}", flush=True)
                rows += run_mode(opts, pinning, sup, mode, ports[mode])
        finally:
            sup.stop_all()
    text = report(opts, pinning, rows, command, started, facts)
    opts.output.write_text(text)
    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(verdicts(rows)))
    print(f"\nwritten to {opts.output}")
    bad = any(row.errors or row.failure for row in rows)
    if bad:
        print("!! some cells had errors or failed; see the report", file=sys.stderr)
    return 1 if bad else 0


def _entry() -> int:
    try:
        return main()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; children stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(_entry())
