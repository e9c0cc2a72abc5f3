"""The default worker count follows whether state is shared through Redis."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.config import load_config
from gateway.plan import build_plan
from gateway.workers import default_workers, usable_cpus


def test_one_worker_without_redis_one_per_cpu_with_it() -> None:
    alone = load_config(None, env={"DEEPSEEK_API_KEY": "k"})
    shared = load_config(None, env={"DEEPSEEK_API_KEY": "k", "REDIS_URL": "redis://r:6379/0"})
    assert default_workers(alone)[0] == 1
    assert default_workers(shared)[0] == usable_cpus() <= len(os.sched_getaffinity(0))
    assert any(line.startswith("workers (gateway serve without --workers): 1:")
               for line in build_plan(alone).lines)
    assert any(f"one per usable CPU ({usable_cpus()})" in line
               for line in build_plan(shared).lines)


def test_a_container_cpu_quota_caps_the_count(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    (tmp_path / "limited").write_text("100000 100000\n")  # one CPU's worth
    (tmp_path / "open").write_text("max 100000\n")
    assert usable_cpus(tmp_path / "limited") == 1
    assert usable_cpus(tmp_path / "open") == cpus
    assert usable_cpus(tmp_path / "absent") == cpus
