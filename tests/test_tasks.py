"""stop(): a task cancelled once may carry on (asyncio.wait_for on Python 3.11, CPython
gh-86296); stop() cancels it again until it ends, and gives up, logged, on one that never
does rather than hang a shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import pytest

from gateway.tasks import stop
from tests.stubborn import drops_one_cancel


async def test_a_task_that_drops_its_first_cancel_is_stopped() -> None:
    task = asyncio.create_task(drops_one_cancel())
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(30):  # stop() takes ~50 ms; generous for a loaded box
            await stop(task)
        assert task.cancelled()
    finally:
        task.cancel()


async def test_a_cancel_wait_for_drops_is_sent_again() -> None:
    """The real thing: the cancel arrives as wait_for's awaitable completes."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[None] = loop.create_future()
    carried_on = asyncio.Event()

    async def waits() -> None:
        await asyncio.wait_for(answered, 60)
        carried_on.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(waits())
    await asyncio.sleep(0)
    answered.set_result(None)  # completes, and stop()'s first cancel lands in the same turn
    try:
        async with asyncio.timeout(30):
            await stop(task)
        assert task.cancelled()
        if sys.version_info < (3, 12):  # fixed there: one cancel is enough
            assert carried_on.is_set()  # the first cancel was lost, as stop() expects
    finally:
        task.cancel()


async def test_a_task_that_never_stops_is_left_running_after_within_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def ignores_cancels() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    task = asyncio.create_task(ignores_cancels(), name="stubborn")
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        with caplog.at_level(logging.WARNING):
            async with asyncio.timeout(30):
                await stop(task, within=0.2)
        assert loop.time() - began >= 0.2
        assert not task.done()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == ["task stubborn did not stop within 0.2 s; left running"]
    finally:
        release.set()
        await task


async def test_nothing_a_finished_task_and_a_failed_one_return_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise RuntimeError("handled where it was raised")

    finished = asyncio.create_task(asyncio.sleep(0))
    failed = asyncio.create_task(fails())
    await asyncio.wait({finished, failed})
    with caplog.at_level(logging.WARNING):
        await stop(None)
        await stop(finished)
        await stop(failed)  # its error retrieved: no "never retrieved" warning at collection
    assert not finished.cancelled() and not failed.cancelled()
    assert not caplog.records
