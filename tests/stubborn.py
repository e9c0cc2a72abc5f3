"""A coroutine that loses its first cancel, as asyncio.wait_for can make any task do on
Python 3.11 (CPython gh-86296: a cancel that meets the end of what it waited for is dropped).
What closes such a task with one cancel and an await waits forever; gateway/tasks.py."""

from __future__ import annotations

import asyncio
import contextlib


async def drops_one_cancel() -> None:
    """Wait; lose the first cancel and wait again, until a second cancel ends it."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await asyncio.Event().wait()
