"""Stopping a background task for good.

One cancel is not always enough on Python 3.11: asyncio.wait_for (which redis-py, the
database drivers and this gateway await through) drops a cancellation that arrives as its
awaitable completes (CPython gh-86296), so a task cancelled once can carry on, and a closer
that then awaits it waits forever (a test hung until pytest's timeout). `stop()` cancels
again until the task ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("gateway.tasks")

RECANCEL = 0.05  # how often a task that has not ended yet is cancelled again


async def stop(task: asyncio.Task[Any] | None, within: float = 5.0) -> None:
    """Cancel `task` and wait for its end, cancelling it again while it runs. Gives up after
    `within` seconds, logged, rather than hang a shutdown."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.warning("task %s did not stop within %.1f s; left running",
                        task.get_name(), within)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL, left))
    if not task.cancelled():
        task.exception()  # retrieved: its error, if any, was handled where it was raised
