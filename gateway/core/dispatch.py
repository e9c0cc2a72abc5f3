"""Failover over attempts: a canonical call in, a served answer or open stream out.

Each attempt is bounded by the time the call has left (and, for a stream, by the provider's
first-byte timeout, which runs until the first token: keep-alive comments are not progress).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from gateway.core.answer import Answer
from gateway.core.attempt import Attempter, OpenStream
from gateway.core.call import Call
from gateway.errors import UpstreamError
from gateway.routing.failover import AllTargetsFailed, Failover, Served
from gateway.routing.policy import Target

# A non-streamed attempt with at least this share of the provider's total timeout left is
# bounded by that timeout (the transport's, gateway/http1.py) alone: with the defaults
# (deadline = total = 1800 s) every call has a few microseconds less than `total` left, and an
# asyncio timer of its own per call cost ~2% of the gateway's CPU (bench/RESULTS-pipeline.md)
# to move the end of a half-hour call by that much. Anything further from `total` keeps its own
# timer.
_NO_TIMER_ABOVE = 0.999


class Dispatcher:
    def __init__(self, failover: Failover, attempter: Attempter) -> None:
        self._failover = failover
        self._attempter = attempter

    async def complete(self, call: Call, pinned: str | None) -> Served[Answer]:
        """Raises `AllTargetsFailed`."""
        attempter = self._attempter

        async def attempt(target: Target, seconds_left: float) -> Answer:
            if seconds_left < target.provider.timeouts.total * _NO_TIMER_ABOVE:
                async with _Deadline(target, seconds_left):
                    return await attempter.complete(target, call)
            return await attempter.complete(target, call)  # the transport's total bounds it

        return await self._failover.run(call.model.canonical, pinned, attempt)

    async def stream(self, call: Call, pinned: str | None) -> Served[OpenStream]:
        """Raises `AllTargetsFailed`. The caller settles the result when the stream ends."""
        attempter = self._attempter

        async def attempt(target: Target, seconds_left: float) -> OpenStream:
            async with _Deadline(target, min(seconds_left, target.provider.timeouts.first_byte)):
                return await attempter.open_stream(target, call)

        return await self._failover.run(call.model.canonical, pinned, attempt, streamed=True)


__all__ = ["AllTargetsFailed", "Dispatcher"]


class _Deadline:
    """Bound one attempt; running out is the upstream's timeout, so it fails over.

    What `asyncio.timeout` does for this one use, without its state machine and its
    rescheduling: a timer that cancels the attempt's task, and on the way out the cancellation
    it caused turned into the upstream's timeout. Every streamed call enters one, and
    `asyncio.timeout` cost about twice as much (bench/RESULTS-perstream.md)."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_seconds", "_target", "_task")

    def __init__(self, target: Target, seconds: float) -> None:
        self._target = target
        self._seconds = seconds
        self._expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline bounds a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = asyncio.get_running_loop()
        if self._seconds > 0:
            self._handle: asyncio.Handle = loop.call_later(self._seconds, self._expire)
        else:  # as asyncio.timeout: already over, so cancelled at the next await
            self._handle = loop.call_soon(self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._handle.cancel()
        # Our cancellation, and no one else's since we entered: the attempt ran out of time.
        if self._expired and self._task.uncancel() <= self._cancelling \
                and kind is asyncio.CancelledError:
            name = self._target.provider.name
            raise UpstreamError(
                f"{name} did not answer within {self._seconds:.1f} s",
                provider=name, upstream_status=None, code="upstream_timeout",
            ) from None
