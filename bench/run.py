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

`python bench/run.py --scenario metering` measures what metering costs: the same gateway with
metering off and with metering on into a fresh Postgres database, runs interleaved; it writes
bench/RESULTS-metering-overhead.md.

`python bench/run.py --scenario compare --before DIR [--after DIR]` measures a regression: the
gateway imported from DIR (a git worktree of an older commit) against the working tree's, both
metering into Postgres, runs interleaved with the raw forwarder's; it writes
bench/RESULTS-compare.md.

Every gateway started here is explicit about metering (a config file says `enabled: true` or
`false`; DATABASE_URL comes from the harness, never the caller) and runs in the run's temporary
directory, so nothing (SQLite file, spool) lands in the repository. The overhead and metering
scenarios meter into a database `switchyard_bench_<random>` on the Postgres server of
--database-url, created at the start and dropped at the end, also on failure and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import secrets
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg  # the gateway's own dependency (its Postgres driver)
import yaml  # the gateway's own dependency: run.py runs with the project's venv

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TARGETS = ("direct", "raw", "raw-json", "raw-http1", "gateway")
MODES = ("non-stream", "stream")
Mode = Literal["non-stream", "stream"]
SCENARIOS = ("overhead", "failover", "metering", "compare")
Scenario = Literal["overhead", "failover", "metering", "compare"]
DEFAULT_OUTPUT = {
    "overhead": "RESULTS.md",
    "failover": "RESULTS-failover.md",
    "metering": "RESULTS-metering-overhead.md",
    "compare": "RESULTS-compare.md",
}
DEFAULT_REPEATS = {"overhead": 3, "failover": 3, "metering": 3, "compare": 5}
THROUGHPUT_TARGET = 0.6  # gateway rps / raw-forwarder rps at 32 connections, at least
LATENCY_TARGET_MS = 0.2  # gateway p50 - raw-forwarder p50 at 1 connection, at most (issue 16)
METERING_TARGET = 0.9  # metering-on rps / metering-off rps at 32 connections, at least
# after's (gateway / raw rps) over before's, at 32 connections, at least: "must not regress"
REGRESSION_BAR = 0.95
METER_OFF, METER_ON = "metering off", "metering on"
METERING_VARIANTS = (METER_OFF, METER_ON)
DRAIN_TIMEOUT = 10.0  # seconds to wait for the usage writer to commit what it has queued
DEFAULT_DATABASE = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Gateway metrics about the usage writer: any whose name has one of these words.
WRITER_METRIC = re.compile(r"usage|writer|spool|meter", re.I)
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

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path = REPO_DIR,
    ) -> Child:
        """Start a child; gateways get cwd=run_dir so no relative path lands in the repo."""
        log = self.run_dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
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


# ---------------------------------------------------------------------------- metering database


def _pg(url: str, sql: str, fetch: bool = True) -> Any:
    """One statement on a fresh asyncpg connection (the harness itself is synchronous)."""

    async def go() -> Any:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return await (conn.fetchval(sql) if fetch else conn.execute(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


class ScratchDatabase:
    """A fresh Postgres database for one run's usage rows; `scratch_database` drops it."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"switchyard_bench_{secrets.token_hex(4)}"
        self.url = urlsplit(server)._replace(path=f"/{self.name}").geturl()
        parts = urlsplit(server)
        self.where = f"{parts.hostname}:{parts.port or 5432}"
        self.version = "unknown"

    def create(self) -> None:
        try:
            self.version = str(_pg(self.server, "SHOW server_version"))
            _pg(self.server, f'CREATE DATABASE "{self.name}"', fetch=False)
        except Exception as exc:
            raise BenchError(
                f"cannot create the metering database {self.name} on {self.where}: {exc!r}; "
                "start Postgres or pass --database-url"
            ) from None

    def count(self) -> int | None:
        """Rows in `usage`; None before the gateway migrated it or if Postgres did not answer."""
        try:
            return int(_pg(self.url, "SELECT count(*) FROM usage"))
        except Exception:
            return None

    def drop(self) -> None:
        try:
            _pg(self.server, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)', fetch=False)
        except Exception as exc:
            print(f"!! could not drop database {self.name}: {exc!r}", file=sys.stderr)


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[ScratchDatabase]:
    db = ScratchDatabase(server)
    db.create()
    print(f"metering into Postgres {db.where}, database {db.name} (dropped at the end)")
    try:
        yield db
    finally:
        db.drop()


def metering_config(run_dir: Path, on: bool, side: str = "") -> dict[str, Any]:
    """The `metering:` section of every gateway the harness starts: never the implicit default
    (SQLite in the working directory). Spool and SQLite paths point into the run directory.
    `side` ("before", "after"): in the compare scenario, BENCH_JOURNAL_BEFORE / _AFTER set
    that side's journal (overriding BENCH_JOURNAL), so one run measures the journal's cost."""
    if not on:
        return {"enabled": False}
    config: dict[str, Any] = {
        "enabled": True,
        "spool_path": str(run_dir / "spool"),
        "sqlite_path": str(run_dir / "unused.db"),  # DATABASE_URL wins; a stray file stays here
    }
    # The usage journal's cost (bench/README.md): BENCH_JOURNAL=off, or an fsync policy.
    journal = os.environ.get(f"BENCH_JOURNAL_{side.upper()}") if side else None
    journal = journal or os.environ.get("BENCH_JOURNAL")
    if journal == "off":
        config["journal"] = False
    elif journal:
        config["journal_fsync"] = journal
    return config


def start_bench_gateway(
    pinning: Pinning,
    sup: Supervisor,
    name: str,
    port: int,
    upstream_base: str,
    db: ScratchDatabase | None,
) -> Child:
    """A gateway at nginx (DeepSeek from the environment) metering into `db`, or not at all
    when db is None; its config file is run_dir/<name>.yaml and its cwd the run directory."""
    config_path = sup.run_dir / f"{name}.yaml"
    config_path.write_text(config_yaml({"metering": metering_config(sup.run_dir, db is not None)}))
    env = server_env("gateway", upstream_base)
    if db is not None:
        env["DATABASE_URL"] = db.url
    argv = [*python_server_argv(pinning, port, "gateway"), "--config", str(config_path)]
    return sup.start(name, argv, env, cwd=sup.run_dir)


@dataclass
class RowCheck:
    """The usage rows one metering gateway left in the database against what it served."""

    label: str
    requests: int | None  # gateway_requests_total summed over labels; None if /metrics unread
    rows: int | None  # rows it added to `usage` once the writer drained; None if uncounted
    waited_s: float
    writer: dict[str, str]  # writer metrics from /metrics after the drain
    rows_after_stop: int | None = None  # after SIGTERM, which drains the queue again

    @property
    def ok(self) -> bool:
        return (
            self.requests is not None
            and self.rows == self.requests
            and self.rows_after_stop in (None, self.requests)
        )


def drain_rows(db: ScratchDatabase, port: int, baseline: int, label: str) -> RowCheck:
    """With the gateway idle, poll the row count until it equals the requests served, or stops
    changing for 2 s, or DRAIN_TIMEOUT passes."""
    start = time.monotonic()
    last: int | None = -1
    changed = start
    while True:
        samples = scrape(port)
        requests = round(metric_sum(samples, "gateway_requests_total")) if samples else None
        count = db.count()
        rows = None if count is None else count - baseline
        now = time.monotonic()
        if rows != last:
            last, changed = rows, now
        if requests is not None and rows == requests:
            break
        if now - changed >= 2.0 or now - start >= DRAIN_TIMEOUT:
            break
        time.sleep(0.2)
    return RowCheck(label, requests, rows, now - start, writer_metrics(samples))


def metering_lines(checks: list[RowCheck]) -> list[str]:
    """Rows in the database against gateway_requests_total, per metering gateway."""
    lines = [
        "| gateway | requests served (`gateway_requests_total`) | usage rows after the drain "
        "| waited | rows after the gateway stopped | match |",
        "|---|---:|---:|---:|---:|---|",
    ]

    def num(value: int | None) -> str:
        return "?" if value is None else f"{value:,}"

    for c in checks:
        match = "yes" if c.ok else "**NO: ROWS MISSING OR EXTRA**"
        lines.append(
            f"| {c.label} | {num(c.requests)} | {num(c.rows)} | {c.waited_s:.1f} s "
            f"| {num(c.rows_after_stop)} | {match} |"
        )
    return lines


def writer_lines(checks: list[RowCheck]) -> list[str]:
    lines = []
    for c in checks:
        if c.writer:
            facts = ", ".join(f"`{k}` {v}" for k, v in c.writer.items())
            lines.append(f"- {c.label}, after the drain: {facts}")
        else:
            lines.append(
                f"- {c.label}: /metrics has no metric with usage, writer, spool or meter "
                "in its name"
            )
    return lines


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


def run_wrk(pinning: Pinning, url: str, mode: Mode, connections: int, seconds: float,
            pace_ms: int | None = None) -> WrkRun:
    """wrk against url; with pace_ms each connection waits that long before each request."""
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
    if mode == "stream" or pace_ms is not None:
        argv += ["--", "stream" if mode == "stream" else "plain"]
    if pace_ms is not None:
        argv.append(str(pace_ms))
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
    database: str
    before: Path | None = None  # compare: the checkout whose gateway/ is "before"
    after: Path = REPO_DIR  # compare: the checkout whose gateway/ is "after"


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="overhead",
        help="overhead (default: direct/raw/gateway, writes RESULTS.md), failover (a primary "
        "failing ~50%% against a healthy one, writes RESULTS-failover.md) or metering "
        "(metering off vs on into Postgres, writes RESULTS-metering-overhead.md) or compare "
        "(the gateway of --before against --after's, writes RESULTS-compare.md)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load")
    parser.add_argument(
        "--repeats", type=int, help="runs per cell; median reported (default 3, compare 5)"
    )
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up, 1 repeat")
    parser.add_argument("--targets", help="subset of direct,raw,gateway (overhead only)")
    parser.add_argument("--modes", help="subset of non-stream,stream (overhead only)")
    parser.add_argument("--connections", default="1,32", help="comma-separated wrk -c values")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument(
        "--output",
        type=Path,
        help="default bench/RESULTS.md, RESULTS-failover.md or RESULTS-metering-overhead.md",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE,
        help="Postgres server for the metering database (any database on it; a scratch "
        "switchyard_bench_<random> is created and dropped); default $BENCH_DATABASE_URL or "
        "%(default)s",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="compare only: a checkout (e.g. a git worktree of the baseline commit) whose "
        "gateway/ package the 'before' gateway imports",
    )
    parser.add_argument(
        "--after",
        type=Path,
        help="compare only: the checkout for 'after' (default: this repository's working tree)",
    )
    ns = parser.parse_args(argv)
    scenario: Scenario = ns.scenario
    if scenario == "failover" and (ns.targets or ns.modes):
        parser.error("--targets and --modes apply to the overhead scenario only")
    if scenario in ("metering", "compare") and ns.targets:
        parser.error("--targets applies to the overhead scenario only")
    if scenario != "compare" and (ns.before or ns.after):
        parser.error("--before and --after apply to the compare scenario only")
    if scenario == "compare" and not ns.before:
        parser.error("--scenario compare needs --before DIR (a checkout of the baseline)")
    checkouts = [d.resolve() for d in (ns.before, ns.after) if d]
    if bad := [str(d) for d in checkouts if not (d / "gateway" / "__main__.py").is_file()]:
        parser.error(f"no gateway/__main__.py in {', '.join(bad)}")
    targets = tuple(t for t in (ns.targets or ",".join(TARGETS)).split(",") if t)
    modes = tuple(m for m in (ns.modes or ",".join(MODES)).split(",") if m)
    default_output = DEFAULT_OUTPUT[scenario]
    if bad := [t for t in targets if t not in TARGETS] + [m for m in modes if m not in MODES]:
        parser.error(f"unknown target/mode: {', '.join(bad)}")
    duration, warmup = ns.duration, ns.warmup
    repeats = DEFAULT_REPEATS[scenario] if ns.repeats is None else ns.repeats
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
        database=ns.database_url,
        before=ns.before.resolve() if ns.before else None,
        after=ns.after.resolve() if ns.after else REPO_DIR,
    )


def require_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        raise BenchError(
            f"missing {' and '.join(missing)}; install with: apt-get install nginx-light wrk"
        )


RAW_APPS = {"raw": "bench.raw_forwarder:create_app",
            "raw-json": "bench.raw_json_forwarder:create_app",
            # the raw forwarder on the gateway's own upstream client (gateway/http1.py)
            "raw-http1": "bench.transport_floor:create_http1_app"}


def python_server_argv(pinning: Pinning, port: int, target: str) -> list[str]:
    if target in RAW_APPS:
        return [
            *pinning.server,
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            RAW_APPS[target],
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
    for name in (
        "OPENROUTER_API_KEY",
        "OLLAMA_API_KEY",
        "GATEWAY_MASTER_KEY",
        "REDIS_URL",
        "DATABASE_URL",
    ):
        env.pop(name, None)
    if target in RAW_APPS:
        env["UPSTREAM_URL"] = f"{upstream_base}/chat/completions"
    else:
        env["DEEPSEEK_API_KEY"] = "sk-bench"
        env["DEEPSEEK_BASE_URL"] = upstream_base
    return env


def run_mode(
    opts: Options,
    pinning: Pinning,
    sup: Supervisor,
    mode: Mode,
    upstream_port: int,
    db: ScratchDatabase,
) -> tuple[list[Row], RowCheck | None]:
    """Start the Python servers against this mode's upstream, measure every target, stop them.
    The gateway meters into `db`; its rows are checked against its requests before it stops."""
    upstream_base = f"http://127.0.0.1:{upstream_port}"
    urls: dict[str, str] = {"direct": f"{upstream_base}/v1/chat/completions"}
    startup_failures: dict[str, str] = {}
    started: list[Child] = []
    check: RowCheck | None = None
    baseline = db.count() or 0
    gateway_port = 0
    try:
        for target in ("raw", "raw-json", "raw-http1", "gateway"):
            if target not in opts.targets:
                continue
            port = free_port()
            try:
                if target == "gateway":
                    child = start_bench_gateway(
                        pinning, sup, f"gateway-{mode}", port, upstream_base, db
                    )
                else:
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
            if target == "gateway":
                gateway_port = port
        # Interleaved per connection count (run 1 of every target, run 2 of every target, ...):
        # this box's speed drifts over minutes (other load, Postgres checkpoints after the
        # gateway's inserts), and a drift must shift every target alike, not one of them.
        rows = []
        width = max(len(t) for t in opts.targets)
        for connections in opts.connections:
            cells: dict[str, tuple[Row, str]] = {}
            for target in opts.targets:
                row = Row(target, mode, connections)
                rows.append(row)
                if target in startup_failures:
                    row.failure = f"did not start: {startup_failures[target]}"
                else:
                    cells[target] = (row, urls[target])
            measure_interleaved(opts, pinning, cells, width)
        rows.sort(key=lambda r: (opts.targets.index(r.target), r.connections))
        if gateway_port:
            check = drain_rows(db, gateway_port, baseline, f"gateway, {mode}")
    finally:
        for child in started:
            sup.stop(child)
    if check is not None:
        count = db.count()
        check.rows_after_stop = None if count is None else count - baseline
    return rows, check


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
        http1_32 = find_row(rows, "raw-http1", mode, 32)
        if gw32 and http1_32:
            lines.append(
                f"- {mode}, 32 connections, against a floor on the gateway's own client "
                f"(raw-http1: the same forwarder, gateway/http1.py instead of aiohttp): "
                f"gateway / raw-http1 = {gw32.rps:.0f} / {http1_32.rps:.0f} = "
                f"**{gw32.rps / http1_32.rps:.2f}**"
            )
        json32 = find_row(rows, "raw-json", mode, 32)
        if mode == "stream" and gw32 and json32 and raw32:
            lines.append(
                f"- {mode}, 32 connections, for context: raw-json (the raw forwarder plus one "
                f"orjson round trip per SSE event) / raw = {json32.rps / raw32.rps:.2f}; "
                f"gateway / raw-json = {gw32.rps / json32.rps:.2f}"
            )
    return lines


def table(rows: list[Row], first: str = "target") -> list[str]:
    lines = [
        f"| {first} | mode | connections | requests/s | p50 ms | p99 ms | errors |",
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
        f"runs' requests/s, p50 and p99, and the sum of their errors; runs are interleaved "
        f"across targets (run 1 of each, run 2 of each, ...) so drift shifts all alike",
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
    db: ScratchDatabase,
    checks: list[RowCheck],
) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py`; see bench/README.md for what is measured and how to read it.",
        "",
        *run_facts(opts, pinning, command, started, facts),
        f"- metering: **on, into Postgres** (the production path): each gateway ran with "
        f"`metering: {{enabled: true}}` and `DATABASE_URL` at a fresh database `{db.name}` on "
        f"Postgres {db.version} at {db.where} (same machine, not pinned), dropped after the run",
        "",
        "## Results",
        "",
        *table(rows),
        "",
        "## Targets",
        "",
        *verdicts(rows),
        "",
        "## Metering",
        "",
        "Usage rows each gateway left in the database once its writer drained (polled until the "
        "count matched or stopped changing, at most "
        f"{DRAIN_TIMEOUT:g} s), against the chat requests it served (check request, warm-up and "
        "runs). They must match: every request is one row.",
        "",
        *metering_lines(checks),
        "",
        *writer_lines(checks),
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
        # This scenario measures routing; metering has its own (--scenario metering).
        "metering": {"enabled": False},
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
        "DATABASE_URL",
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


def metric_sum(samples: dict[tuple[str, Labels], float], name: str) -> float:
    """A metric's value summed over all its label sets."""
    return sum(value for (metric, _), value in samples.items() if metric == name)


def writer_metrics(samples: dict[tuple[str, Labels], float]) -> dict[str, str]:
    """Every sample whose name says usage/writer/spool/meter, as {name{labels}: value}."""
    out: dict[str, str] = {}
    for (metric, labels), value in sorted(samples.items()):
        if WRITER_METRIC.search(metric):
            where = ",".join(f'{k}="{v}"' for k, v in labels)
            out[metric + (f"{{{where}}}" if where else "")] = f"{value:g}"
    return out


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
    child = sup.start(f"gateway-{slug}", argv, failover_env(), cwd=sup.run_dir)
    wait_ready(child, port, "/healthz")
    return port


def chat_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1/chat/completions"


def round_order(items: list[Any], i: int) -> list[Any]:
    """Round i's order: rotated by i // 2, reversed in odd rounds. For three variants the
    first six rounds are the six orders (ABC CBA BCA ACB CAB BAC), so each variant runs first,
    in the middle and last equally often, and after each other one equally often."""
    if not items:
        return []
    shift = (i // 2) % len(items)
    rotated = items[shift:] + items[:shift]
    return rotated[::-1] if i % 2 else rotated


def measure_interleaved(
    opts: Options,
    pinning: Pinning,
    cells: dict[str, tuple[Row, str]],
    width: int,
    rotate: bool = False,
) -> None:
    """Check and warm up every variant (same mode and connections), then run 1 of each variant,
    run 2 of each, ...: a box whose speed drifts over minutes shifts every variant alike.
    With rotate, the order changes every round (see round_order), so no variant always runs
    first, or right after the same other one (and its metering writer's last flush).
    A failure is kept on its row; the other variants go on."""

    def label(row: Row) -> str:
        return f"{row.target:{width}} {row.mode:10} c={row.connections:<3}"

    def fail(row: Row, exc: BenchError) -> None:
        row.failure = str(exc)
        print(f"  {label(row)} FAILED: {exc}", file=sys.stderr, flush=True)

    for row, url in cells.values():
        try:
            check_answer(url, row.mode)
            if opts.warmup > 0:
                run_wrk(pinning, url, row.mode, row.connections, opts.warmup)
        except BenchError as exc:
            fail(row, exc)
    order = list(cells.values())
    for i in range(opts.repeats):
        for row, url in round_order(order, i) if rotate else order:
            if row.failure:
                continue
            try:
                run = run_wrk(pinning, url, row.mode, row.connections, opts.duration)
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

    for c in opts.connections:
        print(f"== {c} connection{'s' if c != 1 else ''}", flush=True)
        live = [v for v in FAILOVER_VARIANTS if v in gateway_ports]
        before = {v: scrape(gateway_ports[v]) for v in live}
        measure_interleaved(
            opts,
            pinning,
            {v: (cells[(v, c)].row, chat_url(gateway_ports[v])) for v in live},
            width=21,
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
        "- metering: off in every variant (`metering: {enabled: false}` in the config files): "
        "this scenario measures routing; `--scenario metering` measures metering",
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


# ---------------------------------------------------------------------------- metering scenario


@dataclass
class MeterCell:
    row: Row
    requests: int | None = None  # gateway_requests_total during the cell (check, warm-up, runs)
    writer: dict[str, str] = field(default_factory=dict)  # writer metrics as the runs ended


def run_metering_mode(
    opts: Options,
    pinning: Pinning,
    sup: Supervisor,
    mode: Mode,
    upstream_port: int,
    db: ScratchDatabase,
) -> tuple[list[MeterCell], RowCheck | None]:
    """Two gateways against this mode's upstream, metering off and on (into db), started
    together; every connection count's runs interleaved between them. Then the rows check."""
    upstream_base = f"http://127.0.0.1:{upstream_port}"
    cells = {
        (v, c): MeterCell(Row(v, mode, c)) for v in METERING_VARIANTS for c in opts.connections
    }
    ports: dict[str, int] = {}
    started: list[Child] = []
    check: RowCheck | None = None
    baseline = db.count() or 0
    try:
        for variant in METERING_VARIANTS:
            on = variant == METER_ON
            port = free_port()
            name = f"gateway-metering-{'on' if on else 'off'}-{mode}"
            try:
                child = start_bench_gateway(
                    pinning, sup, name, port, upstream_base, db if on else None
                )
                started.append(child)
                wait_ready(child, port, "/healthz")
            except BenchError as exc:
                print(f"!! {variant} ({mode}) did not start: {exc}", file=sys.stderr, flush=True)
                for c in opts.connections:
                    cells[(variant, c)].row.failure = f"did not start: {exc}"
                continue
            ports[variant] = port
        for c in opts.connections:
            print(f"== {mode}, {c} connection{'s' if c != 1 else ''}", flush=True)
            live = [v for v in METERING_VARIANTS if v in ports]
            before = {v: scrape(ports[v]) for v in live}
            measure_interleaved(
                opts, pinning, {v: (cells[(v, c)].row, chat_url(ports[v])) for v in live}, 12
            )
            for v in live:
                after = scrape(ports[v])
                cell = cells[(v, c)]
                cell.writer = writer_metrics(after)
                if after:
                    served = metric_sum(after, "gateway_requests_total")
                    cell.requests = round(served - metric_sum(before[v], "gateway_requests_total"))
        if METER_ON in ports:
            check = drain_rows(db, ports[METER_ON], baseline, f"{METER_ON}, {mode}")
    finally:
        for child in started:
            sup.stop(child)
    if check is not None:
        count = db.count()
        check.rows_after_stop = None if count is None else count - baseline
    return [cells[(v, c)] for c in opts.connections for v in METERING_VARIANTS], check


def metering_cell(cells: list[MeterCell], variant: str, mode: str, c: int) -> Row | None:
    for cell in cells:
        row = cell.row
        if (row.target, row.mode, row.connections) == (variant, mode, c):
            return row if row.runs and not row.failure else None
    return None


def metering_ratios(cells: list[MeterCell], opts: Options) -> list[str]:
    lines = [
        "| mode | connections | requests/s on / off | p50 on / off | p99 on / off |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in opts.modes:
        for c in opts.connections:
            off = metering_cell(cells, METER_OFF, mode, c)
            on = metering_cell(cells, METER_ON, mode, c)
            if off is None or on is None:
                lines.append(f"| {mode} | {c} | not measured | | |")
                continue
            lines.append(
                f"| {mode} | {c} | **{on.rps / off.rps:.2f}** | {on.p50 / off.p50:.2f} "
                f"| {on.p99 / off.p99:.2f} |"
            )
    return lines


def metering_verdicts(cells: list[MeterCell], opts: Options) -> list[str]:
    """The issue's target: metering costs < 10% of throughput, i.e. on >= 0.9 x off at 32."""
    lines = []
    for mode in opts.modes:
        off = metering_cell(cells, METER_OFF, mode, 32)
        on = metering_cell(cells, METER_ON, mode, 32)
        if off is None or on is None:
            lines.append(f"- {mode}, 32 connections: not measured")
            continue
        ratio = on.rps / off.rps
        verdict = "PASS" if ratio >= METERING_TARGET else "MISS"
        lines.append(
            f"- {mode}, 32 connections: metering-on rps / metering-off rps = {on.rps:.0f} / "
            f"{off.rps:.0f} = **{ratio:.2f}** (target >= {METERING_TARGET}): **{verdict}**"
        )
    return lines


def cell_writer_lines(cells: list[MeterCell]) -> list[str]:
    lines = [
        "| variant | mode | connections | requests in the cell "
        "| writer metrics as the runs ended |",
        "|---|---|---:|---:|---|",
    ]
    for cell in cells:
        row = cell.row
        served = "?" if cell.requests is None else f"{cell.requests:,}"
        facts = ", ".join(f"`{k}` {v}" for k, v in cell.writer.items()) or "none"
        lines.append(f"| {row.target} | {row.mode} | {row.connections} | {served} | {facts} |")
    return lines


def metering_report(
    opts: Options,
    cells: list[MeterCell],
    checks: list[RowCheck],
    db: ScratchDatabase,
    header: list[str],
    run_dir_configs: dict[str, dict[str, Any]],
) -> str:
    rows = [c.row for c in cells]
    lines = [
        "# Metering overhead benchmark results",
        "",
        "Written by `bench/run.py --scenario metering`; see bench/README.md (\"Metering "
        "scenario\") for what is measured and how to read it. The usage writer's own throughput "
        "(rows/s into Postgres) is in [RESULTS-metering.md](RESULTS-metering.md).",
        "",
        *header,
        "- runs interleaved: per mode both gateways run side by side, and for each connection "
        "count run 1 of each, then run 2 of each, ...",
        f"- database: a fresh `{db.name}` on Postgres {db.version} at {db.where} (same machine, "
        "not pinned: its inserts compete with the gateway and wrk for the 2 cores, as a "
        "co-located database would), dropped after the run",
        "",
        "Variants (the same gateway and DeepSeek at nginx; configs below):",
        "",
        f"- **{METER_OFF}**: `metering: {{enabled: false}}`: no writer, no database.",
        f"- **{METER_ON}**: `metering: {{enabled: true}}` and `DATABASE_URL` at the scratch "
        "database: every request's usage row is queued, priced and inserted in batches "
        "(defaults: batch 1000, flush every 0.5 s).",
        "",
        "## Results",
        "",
        *table(rows, first="variant"),
        "",
        "## Metering on over off",
        "",
        "Ratios of the medians: requests/s below 1 and latency above 1 are the price of metering.",
        "",
        *metering_ratios(cells, opts),
        "",
        "## Target",
        "",
        *metering_verdicts(cells, opts),
        "",
        "## Rows in the database",
        "",
        "Per mode, the metering-on gateway's rows once its writer drained (polled until the "
        f"count matched or stopped changing, at most {DRAIN_TIMEOUT:g} s, with the gateway "
        "idle), against the chat requests it served (check requests, warm-ups and runs at every "
        "connection count); then again after SIGTERM. Every request must be one row.",
        "",
        *metering_lines(checks),
        "",
        "## Writer metrics",
        "",
        "Every /metrics sample with usage, writer, spool or meter in its name, read as each "
        "cell's last run ended (queue depth then shows how far the writer lagged under load) and "
        "after the drain. The metering-off gateway has no writer, so it lists none.",
        "",
        *cell_writer_lines(cells),
        "",
        *writer_lines(checks),
        "",
    ]
    if any(row.errors or row.failure for row in rows):
        lines += [
            "**Warning: some cells had errors or failed; their numbers are not to be trusted.**",
            "",
        ]
    lines += failure_details(rows)
    lines += ["## Gateway configs", ""]
    for variant, config in run_dir_configs.items():
        lines += [
            f"{variant} (`gateway serve --config FILE`, merged over gateway/defaults.yaml; "
            "`DEEPSEEK_API_KEY=sk-bench`, `DEEPSEEK_BASE_URL` at nginx"
            + (", `DATABASE_URL` at the scratch database" if variant == METER_ON else "")
            + "):",
            "",
            "```yaml",
            config_yaml(config).rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(lines)


def metering_main(
    opts: Options, pinning: Pinning, command: str, started: datetime, facts: dict[str, str]
) -> int:
    """The metering scenario end to end: database, nginx, per mode two gateways, report."""
    cells: list[MeterCell] = []
    checks: list[RowCheck] = []
    with (
        scratch_database(opts.database) as db,
        tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp,
    ):
        sup = Supervisor(Path(tmp))
        configs = {
            METER_OFF: {"metering": metering_config(Path("RUN_DIR"), False)},
            METER_ON: {"metering": metering_config(Path("RUN_DIR"), True)},
        }
        try:
            upstream = UpstreamPorts.pick()
            ports = {"non-stream": upstream.json, "stream": upstream.sse}
            start_nginx(pinning, sup, upstream)
            for mode in opts.modes:
                mode_cells, check = run_metering_mode(opts, pinning, sup, mode, ports[mode], db)
                cells += mode_cells
                checks += [check] if check else []
        finally:
            sup.stop_all()
    header = run_facts(opts, pinning, command, started, facts)
    text = metering_report(opts, cells, checks, db, header, configs)
    opts.output.write_text(text)
    print()
    for lines in (
        table([c.row for c in cells], first="variant"),
        metering_ratios(cells, opts),
        metering_verdicts(cells, opts),
        metering_lines(checks),
        writer_lines(checks),
    ):
        print("\n".join(lines))
        print()
    print(f"written to {opts.output}")
    bad = any(c.row.errors or c.row.failure for c in cells)
    if bad:
        print("!! some cells had errors or failed; see the report", file=sys.stderr)
    if not checks or not all(c.ok for c in checks):
        print("!! usage rows do not match the requests served; see the report", file=sys.stderr)
        bad = True
    return 1 if bad else 0


# ---------------------------------------------------------------------------- compare scenario


RAW, BEFORE, AFTER = "raw", "gateway-before", "gateway-after"
COMPARE_TARGETS = (RAW, BEFORE, AFTER)
GATEWAY_SIDES = (BEFORE, AFTER)


def compare_checkouts(opts: Options) -> dict[str, Path]:
    """Where each side's gateway/ package comes from."""
    if opts.before is None:
        raise BenchError("--scenario compare needs --before DIR")
    return {BEFORE: opts.before, AFTER: opts.after}


def source_digest(checkout: Path) -> str:
    """A short hash of every file under checkout/gateway (bytecode caches aside): which code a
    gateway started from this checkout ran, uncommitted edits included."""
    digest = hashlib.sha256()
    root = checkout / "gateway"
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        with contextlib.suppress(OSError):  # a file someone is editing may vanish meanwhile
            content = path.read_bytes()
            digest.update(f"{path.relative_to(root)}\0".encode() + content + b"\0")
    return digest.hexdigest()[:12]


def checkout_commit(checkout: Path) -> str:
    git = ["git", "-C", str(checkout)]
    commit = command_line([*git, "rev-parse", "--short", "HEAD"]) or "not a git checkout"
    if command_line([*git, "status", "--porcelain", "--", "gateway"]):
        commit += " + uncommitted changes in gateway/"
    return commit


def checkout_env(checkout: Path, upstream_base: str, db: ScratchDatabase) -> dict[str, str]:
    """The main scenario's gateway environment, metering into db, importing gateway/ from
    checkout: PYTHONPATH comes before the venv's editable install of this repository."""
    env = server_env("gateway", upstream_base)
    env["PYTHONPATH"] = str(checkout)
    env["DATABASE_URL"] = db.url
    return env


def side_env(side: str) -> dict[str, str]:
    """BENCH_ENV_BEFORE / _AFTER ("NAME=value NAME=value"): extra environment for one side of
    the compare scenario, so one run can measure a switch that is set by the environment
    (e.g. tracing: OTEL_EXPORTER_OTLP_ENDPOINT on one side only, bench/otlp_sink.py)."""
    spec = os.environ.get(f"BENCH_ENV_{side.upper()}", "") if side else ""
    return dict(item.split("=", 1) for item in spec.split() if "=" in item)


def verify_import(checkout: Path, env: dict[str, str], cwd: Path) -> None:
    """Ask the same interpreter, environment and directory where `import gateway` resolves: a
    gateway silently importing the other checkout would compare a gateway with itself."""
    probe = subprocess.run(
        [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = probe.stdout.strip()
    want = (checkout / "gateway" / "__init__.py").resolve()
    if probe.returncode != 0 or not found or Path(found).resolve() != want:
        got = found or probe.stderr.strip()[-500:]
        raise BenchError(f"with PYTHONPATH={checkout}, `import gateway` gave {got!r}, not {want}")


def ready_or_stop(sup: Supervisor, child: Child, port: int, health_path: str | None) -> None:
    """wait_ready, but a child that never got ready is stopped rather than left running."""
    try:
        wait_ready(child, port, health_path)
    except BenchError:
        sup.stop(child)
        raise


def start_raw(
    pinning: Pinning, sup: Supervisor, mode: Mode, upstream_base: str
) -> tuple[Child, int]:
    port = free_port()
    argv = python_server_argv(pinning, port, "raw")
    child = sup.start(f"raw-{mode}", argv, server_env("raw", upstream_base))
    ready_or_stop(sup, child, port, None)
    return child, port


def start_checkout_gateway(
    pinning: Pinning,
    sup: Supervisor,
    name: str,
    checkout: Path,
    upstream_base: str,
    db: ScratchDatabase,
) -> tuple[Child, int]:
    """`python -m gateway serve` importing checkout's gateway/, metering on into db, with its
    own directory (cwd, config file, spool) under the run directory; its port once ready."""
    home = sup.run_dir / name
    home.mkdir()
    config_path = home / "gateway.yaml"
    side = name.split("-")[1] if name.startswith("gateway-") else ""
    config_path.write_text(config_yaml({"metering": metering_config(home, True, side)}))
    env = checkout_env(checkout, upstream_base, db)
    env.update(side_env(side))
    verify_import(checkout, env, home)
    port = free_port()
    argv = [
        *pinning.server,
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config_path),
    ]
    child = sup.start(name, argv, env, cwd=home)
    ready_or_stop(sup, child, port, "/healthz")
    return child, port


@dataclass
class CompareMode:
    """One mode's measurements: rows per target and connections, rows checks per side."""

    mode: Mode
    rows: list[Row] = field(default_factory=list)
    checks: dict[str, RowCheck] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # gateway/ hash as each side started


def start_compare_targets(
    opts: Options,
    pinning: Pinning,
    sup: Supervisor,
    mode: Mode,
    upstream_base: str,
    dbs: dict[str, ScratchDatabase],
    result: CompareMode,
    started: list[Child],
) -> tuple[dict[str, int], dict[str, str]]:
    """Start raw and both gateways for this mode (appended to started): the ports of those that
    came up, and why the others did not."""
    checkouts = compare_checkouts(opts)
    ports: dict[str, int] = {}
    failures: dict[str, str] = {}
    for target in COMPARE_TARGETS:
        try:
            if target == RAW:
                child, port = start_raw(pinning, sup, mode, upstream_base)
            else:
                result.digests[target] = source_digest(checkouts[target])
                name, checkout = f"{target}-{mode}", checkouts[target]
                child, port = start_checkout_gateway(
                    pinning, sup, name, checkout, upstream_base, dbs[target]
                )
            started.append(child)
            ports[target] = port
        except BenchError as exc:
            failures[target] = str(exc)
            print(f"!! {target} ({mode}) did not start: {exc}", file=sys.stderr, flush=True)
    return ports, failures


def run_compare_mode(
    opts: Options,
    pinning: Pinning,
    sup: Supervisor,
    mode: Mode,
    upstream_port: int,
    dbs: dict[str, ScratchDatabase],
) -> CompareMode:
    """raw, gateway-before and gateway-after side by side against this mode's upstream; per
    connection count their runs interleaved in rotating order. Then each side's rows check."""
    upstream_base = f"http://127.0.0.1:{upstream_port}"
    result = CompareMode(mode)
    cells = {(t, c): Row(t, mode, c) for t in COMPARE_TARGETS for c in opts.connections}
    baselines = {side: dbs[side].count() or 0 for side in GATEWAY_SIDES}
    started: list[Child] = []
    try:
        ports, failures = start_compare_targets(
            opts, pinning, sup, mode, upstream_base, dbs, result, started
        )
        for c in opts.connections:
            print(f"== {mode}, {c} connection{'s' if c != 1 else ''}", flush=True)
            live: dict[str, tuple[Row, str]] = {}
            for target in COMPARE_TARGETS:
                row = cells[(target, c)]
                if target in failures:
                    row.failure = f"did not start: {failures[target]}"
                else:
                    live[target] = (row, chat_url(ports[target]))
            measure_interleaved(opts, pinning, live, width=len(BEFORE), rotate=True)
        for side in GATEWAY_SIDES:
            if side in ports:
                label = f"{side}, {mode}"
                result.checks[side] = drain_rows(dbs[side], ports[side], baselines[side], label)
    finally:
        for child in started:
            sup.stop(child)
    for side, check in result.checks.items():
        count = dbs[side].count()
        check.rows_after_stop = None if count is None else count - baselines[side]
    result.rows = [cells[(t, c)] for t in COMPARE_TARGETS for c in opts.connections]
    return result


@dataclass(frozen=True)
class Comparison:
    """One mode and connection count: each side's gateway/raw ratio and their quotient."""

    mode: str
    connections: int
    raw: Row
    before: Row
    after: Row

    @property
    def before_ratio(self) -> float:
        return self.before.rps / self.raw.rps

    @property
    def after_ratio(self) -> float:
        return self.after.rps / self.raw.rps

    @property
    def quotient(self) -> float:
        """after-ratio / before-ratio: the issue's bar (raw cancels: it is after / before)."""
        return self.after_ratio / self.before_ratio

    def per_round(self) -> list[float]:
        """after / before requests/s within each round (they ran seconds apart)."""
        if len(self.after.runs) != len(self.before.runs):
            return []
        return [a.rps / b.rps for a, b in zip(self.after.runs, self.before.runs, strict=True)]

    def interval(self) -> tuple[float, float] | None:
        """The per-round ratios' geometric mean +- 2 standard errors (in log space): roughly
        where after / before lies given this run's noise. None under 3 rounds."""
        rounds = self.per_round()
        if len(rounds) < 3:
            return None
        logs = [math.log(r) for r in rounds]
        mean, err = statistics.fmean(logs), 2 * statistics.stdev(logs) / math.sqrt(len(logs))
        return math.exp(mean - err), math.exp(mean + err)

    @property
    def passed(self) -> bool:
        return self.quotient >= REGRESSION_BAR

    def conclusive(self) -> str:
        """Whether the noise this run saw allows a verdict: the interval must clear the bar."""
        span = self.interval()
        if span is None:
            return "no interval (under 3 rounds)"
        low, high = span
        where = f"per-round interval {low:.3f}-{high:.3f}"
        if low <= REGRESSION_BAR <= high:
            return f"{where} contains {REGRESSION_BAR}: within this run's noise, not conclusive"
        return f"{where} clear of {REGRESSION_BAR}: conclusive"


def comparison(rows: list[Row], mode: str, c: int) -> Comparison | None:
    raw, before, after = (find_row(rows, t, mode, c) for t in COMPARE_TARGETS)
    if raw is None or before is None or after is None:
        return None
    return Comparison(mode, c, raw, before, after)


def comparison_table(rows: list[Row], opts: Options) -> list[str]:
    lines = [
        "| mode | connections | before / raw | after / raw | after-ratio / before-ratio "
        "| per round after / before: median (min-max) | per round: mean +- 2 SE "
        "| p50 after / before | p99 after / before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in opts.modes:
        for c in opts.connections:
            cmp = comparison(rows, mode, c)
            if cmp is None:
                lines.append(f"| {mode} | {c} | not measured | | | | | | |")
                continue
            rounds = cmp.per_round()
            spread = (
                f"{statistics.median(rounds):.3f} ({min(rounds):.3f}-{max(rounds):.3f})"
                if rounds
                else "-"
            )
            span = cmp.interval()
            interval = f"{span[0]:.3f}-{span[1]:.3f}" if span else "-"
            lines.append(
                f"| {mode} | {c} | {cmp.before_ratio:.3f} | {cmp.after_ratio:.3f} "
                f"| **{cmp.quotient:.3f}** | {spread} | {interval} "
                f"| {cmp.after.p50 / cmp.before.p50:.3f} | {cmp.after.p99 / cmp.before.p99:.3f} |"
            )
    return lines


def compare_verdicts(rows: list[Row], opts: Options) -> list[str]:
    """The issue's bar per mode: after's gateway/raw ratio >= 0.95 x before's at 32."""
    lines = []
    for mode in opts.modes:
        cmp = comparison(rows, mode, 32)
        if cmp is None:
            lines.append(f"- {mode}, 32 connections: not measured")
            continue
        verdict = "PASS" if cmp.passed else "FAIL"
        lines.append(
            f"- {mode}, 32 connections: gateway / raw before = {cmp.before.rps:.0f} / "
            f"{cmp.raw.rps:.0f} = {cmp.before_ratio:.3f}, after = {cmp.after.rps:.0f} / "
            f"{cmp.raw.rps:.0f} = {cmp.after_ratio:.3f}; after / before = "
            f"**{cmp.quotient:.3f}** (bar >= {REGRESSION_BAR}): **{verdict}**; "
            f"{cmp.conclusive()}"
        )
    if opts.before == opts.after and side_env("before") == side_env("after"):
        lines.append(
            "- before and after are the same checkout: both sides ran identical code, so every "
            "ratio's distance from 1.000 is this box's noise, not a change"
        )
    return lines


def checkout_lines(
    opts: Options, modes: list[CompareMode], commits: dict[str, str], dbs: dict[str, str]
) -> list[str]:
    lines = []
    for side, path in compare_checkouts(opts).items():
        digests = ", ".join(
            f"{m.mode} `{m.digests[side]}`" for m in modes if side in m.digests
        )
        lines.append(
            f"- **{side}**: `PYTHONPATH={path} python -m gateway serve --config FILE`; commit "
            f"{commits[side]}; `import gateway` checked to resolve to "
            f"`{path / 'gateway' / '__init__.py'}` before each start; hash of its gateway/ "
            f"files as its gateway started: {digests or 'never started'}; meters into its own "
            f"fresh database `{dbs[side]}`"
        )
    return lines


def compare_report(
    opts: Options,
    modes: list[CompareMode],
    header: list[str],
    commits: dict[str, str],
    dbs: dict[str, ScratchDatabase],
) -> str:
    rows = [row for m in modes for row in m.rows]
    checks = [check for m in modes for check in m.checks.values()]
    names = {side: db.name for side, db in dbs.items()}
    server = next(iter(dbs.values()))
    lines = [
        "# Before / after benchmark results",
        "",
        "Written by `bench/run.py --scenario compare`; see bench/README.md (\"Compare "
        "scenario\") for what is measured and how to read it.",
        "",
        *header,
        "- targets: the raw forwarder (the floor) and two gateways, all three running side by "
        "side per mode; per connection count the runs change order every round (raw before "
        "after, after before raw, before after raw, raw after before, ...) so drift and each "
        "run's aftermath hit all alike",
        *checkout_lines(opts, modes, commits, names),
        f"- metering: **on, into Postgres** {server.version} at {server.where} (same machine, "
        "not pinned), one scratch database per side (their schemas may differ), dropped after "
        "the run",
        "",
        "## Results",
        "",
        *table(rows),
        "",
        "## After against before",
        "",
        "Ratios of the medians. after-ratio / before-ratio is the issue's bar; the raw floor "
        "cancels out of it (it equals after / before requests/s) but the two ratios show how "
        "far each gateway is from the floor. Per round: run i of after over run i of before "
        "(seconds apart); their geometric mean +- 2 standard errors is roughly where after / "
        "before lies given the noise this run saw.",
        "",
        *comparison_table(rows, opts),
        "",
        "## Bar",
        "",
        *compare_verdicts(rows, opts),
        "",
        "## Rows in the database",
        "",
        "Per side and mode, the gateway's usage rows once its writer drained (at most "
        f"{DRAIN_TIMEOUT:g} s, gateway idle) and after SIGTERM, against the chat requests it "
        "served. Every request must be one row.",
        "",
        *metering_lines(checks),
        "",
        *writer_lines(checks),
        "",
    ]
    if any(row.errors or row.failure for row in rows):
        lines += [
            "**Warning: some cells had errors or failed; their numbers are not to be trusted.**",
            "",
        ]
    lines += failure_details(rows)
    lines += [
        "## Gateway config",
        "",
        "Each side (`--config FILE`, merged over each checkout's gateway/defaults.yaml; "
        "`DEEPSEEK_API_KEY=sk-bench`, `DEEPSEEK_BASE_URL` at nginx, `DATABASE_URL` at the "
        "side's scratch database, cwd `RUN_DIR`):",
        "",
        *(line for side in ("before", "after") for line in (
            f"{side}:", "", "```yaml",
            config_yaml({"metering": metering_config(Path("RUN_DIR"), True, side)}).rstrip("\n"),
            "```", "", *([f"extra environment: `{os.environ[f'BENCH_ENV_{side.upper()}']}`", ""]
                         if os.environ.get(f"BENCH_ENV_{side.upper()}") else []))),
    ]
    return "\n".join(lines)


def compare_main(
    opts: Options, pinning: Pinning, command: str, started: datetime, facts: dict[str, str]
) -> int:
    """The compare scenario end to end: two databases, nginx, per mode raw + two gateways."""
    commits = {side: checkout_commit(path) for side, path in compare_checkouts(opts).items()}
    modes: list[CompareMode] = []
    with contextlib.ExitStack() as stack:
        dbs = {side: stack.enter_context(scratch_database(opts.database)) for side in GATEWAY_SIDES}
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="switchyard-bench-"))
        sup = Supervisor(Path(tmp))
        try:
            upstream = UpstreamPorts.pick()
            ports = {"non-stream": upstream.json, "stream": upstream.sse}
            start_nginx(pinning, sup, upstream)
            for mode in opts.modes:
                modes.append(run_compare_mode(opts, pinning, sup, mode, ports[mode], dbs))
        finally:
            sup.stop_all()
    header = run_facts(opts, pinning, command, started, facts)
    header.append("- load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(compare_report(opts, modes, header, commits, dbs))
    rows = [row for m in modes for row in m.rows]
    checks = [check for m in modes for check in m.checks.values()]
    print()
    for lines in (
        table(rows),
        comparison_table(rows, opts),
        compare_verdicts(rows, opts),
        metering_lines(checks),
    ):
        print("\n".join(lines))
        print()
    print(f"written to {opts.output}")
    bad = any(row.errors or row.failure for row in rows)
    if bad:
        print("!! some cells had errors or failed; see the report", file=sys.stderr)
    if len(checks) != 2 * len(modes) or not all(c.ok for c in checks):
        print("!! usage rows do not match the requests served; see the report", file=sys.stderr)
        bad = True
    if bad:
        return 1
    missed = [c for m in opts.modes if (c := comparison(rows, m, 32)) and not c.passed]
    return 3 if missed else 0


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
    if opts.scenario == "metering":
        return metering_main(opts, pinning, command, started, facts)
    if opts.scenario == "compare":
        return compare_main(opts, pinning, command, started, facts)
    rows: list[Row] = []
    checks: list[RowCheck] = []
    with (
        scratch_database(opts.database) as db,
        tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp,
    ):
        sup = Supervisor(Path(tmp))
        try:
            upstream = UpstreamPorts.pick()
            ports = {"non-stream": upstream.json, "stream": upstream.sse}
            start_nginx(pinning, sup, upstream)
            for mode in opts.modes:
                print(f"== {mode}", flush=True)
                mode_rows, check = run_mode(opts, pinning, sup, mode, ports[mode], db)
                rows += mode_rows
                checks += [check] if check else []
        finally:
            sup.stop_all()
    text = report(opts, pinning, rows, command, started, facts, db, checks)
    opts.output.write_text(text)
    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(verdicts(rows)))
    print()
    print("\n".join(metering_lines(checks)))
    print(f"\nwritten to {opts.output}")
    bad = any(row.errors or row.failure for row in rows)
    if bad:
        print("!! some cells had errors or failed; see the report", file=sys.stderr)
    if not all(c.ok for c in checks):
        print("!! usage rows do not match the requests served; see the report", file=sys.stderr)
        bad = True
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
