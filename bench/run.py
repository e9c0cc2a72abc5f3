"""One command for the gateway's overhead benchmark: `python bench/run.py [--duration 10]`.

It starts an instant upstream (nginx with canned answers), the raw aiohttp forwarder (the Python
floor) and the gateway, drives each with wrk at 1 and 32 connections, streaming and not, and
writes bench/RESULTS.md. The raw forwarder is the yardstick rather than nginx: it shows what any
Python server on this machine pays, so the ratio to it is the gateway's own cost. See
bench/README.md for how to read the numbers.
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

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TARGETS = ("direct", "raw", "gateway")
MODES = ("non-stream", "stream")
Mode = Literal["non-stream", "stream"]
THROUGHPUT_TARGET = 0.6  # gateway rps / raw-forwarder rps at 32 connections, at least
LATENCY_TARGET_MS = 0.5  # gateway p50 - raw-forwarder p50 at 1 connection, at most
REQUEST_BODY: dict[str, Any] = {
    "model": "deepseek-v4-flash",
    "messages": [{"role": "user", "content": "Say hi"}],
}


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


def nginx_quote(text: str) -> str:
    """Escape for a single-quoted nginx string; `$` would start a variable, so refuse it."""
    if "$" in text:
        raise ValueError("canned bodies must not contain '$' (nginx variable syntax)")
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def write_nginx_conf(run_dir: Path, json_port: int, sse_port: int) -> Path:
    """Fill the template; every path nginx writes to lives under run_dir."""
    template = (BENCH_DIR / "nginx.conf.template").read_text()
    values = {
        "DIR": str(run_dir),
        "JSON_PORT": str(json_port),
        "SSE_PORT": str(sse_port),
        "JSON_BODY": nginx_quote(json.dumps(canned_completion(), separators=(",", ":"))),
        "SSE_BODY": nginx_quote(canned_sse()),
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


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell; median reported")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up, 1 repeat")
    parser.add_argument("--targets", default=",".join(TARGETS), help="subset of direct,raw,gateway")
    parser.add_argument("--modes", default=",".join(MODES), help="subset of non-stream,stream")
    parser.add_argument("--connections", default="1,32", help="comma-separated wrk -c values")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    ns = parser.parse_args(argv)
    targets = tuple(t for t in ns.targets.split(",") if t)
    modes = tuple(m for m in ns.modes.split(",") if m)
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
        output=ns.output,
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


def start_nginx(pinning: Pinning, sup: Supervisor, json_port: int, sse_port: int) -> None:
    conf = write_nginx_conf(sup.run_dir, json_port, sse_port)
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
    wait_ready(child, json_port, None)
    wait_ready(child, sse_port, None)


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


def report(
    opts: Options,
    pinning: Pinning,
    rows: list[Row],
    command: str,
    started: datetime,
    facts: dict[str, str],
) -> str:
    pin_note = (
        "server under test pinned to CPU 0; wrk and nginx pinned to CPU 1 (taskset)"
        if pinning.active
        else "no CPU pinning (taskset missing, < 2 CPUs or --no-pin)"
    )
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py`; see bench/README.md for what is measured and how to read it.",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        *[f"- {k}: {v}" for k, v in facts.items()],
        f"- command: `{command}`",
        f"- per cell: {opts.warmup:g} s warm-up, then {opts.repeats} x {opts.duration:g} s wrk "
        f"runs (`wrk -t1 -cN --latency -s bench/post.lua`); the table shows the median of the "
        f"runs' requests/s, p50 and p99, and the sum of their errors",
        f"- pinning: {pin_note}",
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
    failures = [r for r in rows if r.failure]
    if failures:
        lines += ["## Failures", ""]
        for row in failures:
            lines += [
                f"- {row.target} {row.mode} c={row.connections}:",
                "",
                "```",
                row.failure,
                "```",
                "",
            ]
    return "\n".join(lines)


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
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp:
        sup = Supervisor(Path(tmp))
        try:
            ports = {"non-stream": free_port(), "stream": free_port()}
            start_nginx(pinning, sup, ports["non-stream"], ports["stream"])
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
