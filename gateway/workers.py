"""How many worker processes `gateway serve` runs, and tying each worker's life to its parent.

Without Redis every worker keeps its own rate limits, budgets, breakers and caches (a key
would get up to N times its limits), so the default is one process then, and one worker per
usable CPU when `REDIS_URL` shares that state. uvicorn's workers are children of a supervisor;
if the supervisor is killed with SIGKILL it cannot stop them, so each worker asks the kernel
(Linux `prctl(PR_SET_PDEATHSIG)`) for a SIGTERM when its parent dies: no orphans serving on.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
from pathlib import Path

from gateway.config import GatewayConfig

_PR_SET_PDEATHSIG = 1
# The supervisor's pid, for its workers (`gateway serve` sets it before spawning them).
SUPERVISOR_ENV = "SWITCHYARD_SUPERVISOR_PID"


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (a
    container's limit), never the machine's count alone."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def default_workers(config: GatewayConfig) -> tuple[int, str]:
    """The worker count when `--workers` is not given, and why (for the log and the plan)."""
    if config.redis_url:
        cpus = usable_cpus()
        return cpus, f"one per usable CPU ({cpus}): state is shared through REDIS_URL"
    return 1, "1: no REDIS_URL, so limits, breakers and caches live in one process"


def die_with_parent(parent: int) -> None:
    """SIGTERM this process when `parent` dies (Linux; elsewhere nothing); if it is already
    gone, terminate now."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
