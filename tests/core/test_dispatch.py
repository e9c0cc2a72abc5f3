"""An attempt's deadline: running out is the upstream's timeout (so the call fails over); any
other cancellation stays a cancellation, and an attempt in time leaves nothing behind."""

import asyncio

import pytest

from gateway.config import load_config
from gateway.core.dispatch import _Deadline
from gateway.errors import UpstreamError
from gateway.providers import build_provider
from gateway.reasoning_memory import ReasoningMemory
from gateway.routing.policy import Target


def target() -> Target:
    config = load_config(env={"DEEPSEEK_API_KEY": "k"})
    provider = build_provider("deepseek", config.providers["deepseek"], ReasoningMemory())
    return Target(provider, "deepseek-v4-flash")


async def test_an_attempt_that_runs_out_is_the_upstreams_timeout() -> None:
    with pytest.raises(UpstreamError) as raised:
        async with _Deadline(target(), 0.01):
            await asyncio.sleep(5)
    assert raised.value.code == "upstream_timeout" and raised.value.provider == "deepseek"
    assert "within 0.0 s" in str(raised.value)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


@pytest.mark.parametrize("seconds", [0.0, -1.0])
async def test_a_deadline_already_past_cuts_at_the_first_await(seconds: float) -> None:
    with pytest.raises(UpstreamError):
        async with _Deadline(target(), seconds):
            await asyncio.sleep(0)
            await asyncio.sleep(5)


async def test_an_attempt_in_time_leaves_no_timer_and_no_cancellation() -> None:
    async with _Deadline(target(), 0.02):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)  # past the deadline: its timer must not fire now
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0 and not task.cancelled()


async def test_someone_elses_cancellation_is_not_a_timeout() -> None:
    entered = asyncio.Event()

    async def attempt() -> None:
        async with _Deadline(target(), 5):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(attempt())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_that_came_with_the_timeout_stays_a_cancellation() -> None:
    """The deadline ran out and someone else cancelled in the same tick: theirs wins, as with
    asyncio.timeout."""
    deadline = _Deadline(target(), 5)

    async def attempt() -> None:
        async with deadline:
            await asyncio.sleep(5)

    task = asyncio.create_task(attempt())
    await asyncio.sleep(0)  # entered, waiting
    deadline._expire()  # its timer fires...
    task.cancel()  # ...and so does someone else's cancellation
    with pytest.raises(asyncio.CancelledError):
        await task
