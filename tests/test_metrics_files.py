"""Multiprocess metric values reach their shared files on a flush (once a second, at a scrape,
at exit), not on every change; what the files hold is what prometheus-client's multiprocess
collector reads. Run in a fresh interpreter: the value class is process-wide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import os, sys, time
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from gateway import metrics_files

def files_say():
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return {s.name: s.value for m in registry.collect() for s in m.samples
            if not s.name.endswith("_created")}

files = metrics_files.install()
assert metrics_files.install() is files  # once per process
calls = Counter("calls", "c", ["api"], registry=None)
busy = Gauge("busy", "g", registry=None, multiprocess_mode="livesum")
took = Histogram("took", "h", buckets=(1, 2), registry=None)
for _ in range(1000):
    calls.labels("chat").inc()
busy.inc(3)
took.observe(1.5)
assert calls.labels("chat")._value.get() == 1000  # in memory at once
before = files_say()
assert before.get("calls_total", 0) == 0, before  # not written per change
files.flush()
after = files_say()
assert after["calls_total"] == 1000 and after["busy"] == 3, after
assert after["took_count"] == 1 and after["took_sum"] == 1.5, after
calls.labels("chat").inc(5)
time.sleep(1.6)  # the thread writes once a second
assert files_say()["calls_total"] == 1005
calls.labels("chat").inc(7)
print("ok")
'''


def test_values_reach_the_files_on_flush_on_the_interval_and_at_exit(tmp_path: Path) -> None:
    env_dir = tmp_path / "metrics"
    env_dir.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
        env={"PROMETHEUS_MULTIPROC_DIR": str(env_dir), "PATH": "/usr/bin:/bin",
             "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    check = subprocess.run(
        [sys.executable, "-c",
         "from prometheus_client import CollectorRegistry\n"
         "from prometheus_client.multiprocess import MultiProcessCollector\n"
         "r = CollectorRegistry(); MultiProcessCollector(r)\n"
         "print([s.value for m in r.collect() for s in m.samples if s.name == 'calls_total'])"],
        capture_output=True, text=True, timeout=60,
        env={"PROMETHEUS_MULTIPROC_DIR": str(env_dir), "PATH": "/usr/bin:/bin"})
    assert check.stdout.strip() == "[1012.0]", check.stderr  # the last 7 written at exit
