"""The drain's cut: a call still running at the deadline is cancelled as a shutdown, takes
that cut once (its error and `shutdown` row), and is cut again if its first cut was lost (a
cancel asyncio.wait_for drops on Python 3.11, CPython gh-86296)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.core.drain import Drain
from tests.stubborn import drops_one_cancel


async def _call(drain: Drain, work: asyncio.Future[None] | None, took: list[int],
                sending: float = 0.0, cut: asyncio.Event | None = None) -> None:
    """A call as the pipeline runs one: on the drain's cut it withdraws the cancellation
    (and sets `cut`), spends `sending` seconds sending its error and notes the task's
    pending cancels."""
    task = drain.enter()
    try:
        await (work if work is not None else drops_one_cancel())
    except asyncio.CancelledError:
        assert drain.uncancel_if_cut()
        if cut is not None:
            cut.set()
        await asyncio.sleep(sending)
        assert task is not None
        took.append(task.cancelling())
    finally:
        drain.leave(task)


async def test_a_call_that_lost_its_cut_is_cut_again(caplog: pytest.LogCaptureFixture) -> None:
    drain = Drain(0.01, cut_grace=10)
    took: list[int] = []
    call = asyncio.create_task(_call(drain, None, took))
    await asyncio.sleep(0)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway"):
            async with asyncio.timeout(30):
                await drain.run()
        assert call.done() and took == [0]  # cut, and no cancel left pending on it
        assert not [r for r in caplog.records if "did not end" in r.getMessage()]
    finally:
        call.cancel()


async def test_a_call_sending_its_error_after_the_cut_is_not_cut_again() -> None:
    drain = Drain(0.01, cut_grace=10)
    took: list[int] = []
    hung: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    call = asyncio.create_task(_call(drain, hung, took, sending=0.3))
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(30):
            await drain.run()
        assert call.done() and not call.cancelled() and took == [0]
    finally:
        call.cancel()


async def test_a_request_refused_during_the_cut_is_not_cut() -> None:
    """Requests that arrive while cut calls send their errors are refused (a 503); sending
    that refusal is not cut: only the calls running at the deadline are."""
    drain = Drain(0.01, cut_grace=10)
    took: list[int] = []
    hung: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cut = asyncio.Event()
    call = asyncio.create_task(_call(drain, hung, took, sending=1.0, cut=cut))
    refused: list[bool] = []

    async def refusal() -> None:
        task = drain.enter()
        try:
            assert drain.draining
            await asyncio.sleep(0.3)  # sending the 503
            refused.append(True)
        finally:
            drain.leave(task)

    await asyncio.sleep(0)
    run = asyncio.create_task(drain.run())
    try:
        async with asyncio.timeout(30):
            await cut.wait()  # the cut phase: the cut call sends its error for 1 s
            late = asyncio.create_task(refusal())
            await run
            await late
        assert refused == [True] and took == [0]
    finally:
        call.cancel()
        run.cancel()
