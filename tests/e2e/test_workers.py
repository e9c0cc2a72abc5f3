"""`gateway serve --workers N`: the workers end with their supervisor, even when it is killed
with SIGKILL (which it cannot pass on)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import httpx

from tests.db import pg
from tests.e2e.conftest import Upstreams
from tests.e2e.process import start_gateway

pg_database = pg.pg_database
pg_url = pg.pg_url


def descendants(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [p for c in children for p in (int(c), *descendants(int(c)))]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def test_workers_die_when_the_supervisor_is_killed(
    tmp_path: Path, upstreams: Upstreams, pg_url: str
) -> None:
    proc, url = start_gateway(tmp_path, upstreams, pg_url,
                              f"metering: {{spool_path: {tmp_path / 'spool'}}}\n", workers=2)
    workers: list[int] = []
    try:
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        deadline = time.monotonic() + 30
        while len(workers := descendants(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) >= 2, workers  # the two workers (and the resource tracker, if any)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30  # a graceful shutdown each, on a loaded machine
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [w for w in workers if alive(w)]
        assert not left, f"workers outlived their supervisor: {left}"
        try:
            httpx.get(url + "/healthz", timeout=2)
            raise AssertionError("the port still answers after every process ended")
        except httpx.TransportError:
            pass
    finally:
        for pid in {proc.pid, *workers, *descendants(proc.pid)}:  # none left, pass or fail
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_each_worker_writes_the_gateways_access_lines_and_not_uvicorns(
    tmp_path: Path, upstreams: Upstreams, pg_url: str
) -> None:
    """A worker sets up logging after uvicorn did; uvicorn's own access line (and its slower
    response path, taken whenever its access logger can write) must stay off there too."""
    proc, url = start_gateway(tmp_path, upstreams, pg_url,
                              f"metering: {{spool_path: {tmp_path / 'spool'}}}\n", workers=2,
                              log_level="info")
    try:
        body = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(4):
            assert httpx.post(url + "/v1/chat/completions", json=body,
                              timeout=20).status_code == 200
        log = tmp_path / "gateway.log"
        deadline = time.monotonic() + 10  # access lines are written at the end of a tick
        while log.read_text().count("gateway.access") < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        text = log.read_text()
        assert text.count("gateway.access") >= 4 and "api=openai.chat" in text
        assert "uvicorn.access" not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()
