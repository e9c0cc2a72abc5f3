"""Graceful drain: what happens between SIGTERM (or SIGINT) and the server's own shutdown.

uvicorn on SIGTERM or SIGINT stops accepting at once and cuts whatever is still running after
a fixed grace: streams end as a truncated 200, waiting calls get a plain-text 500, neither is
metered. Reasoning calls run for minutes, so the gateway takes both signals first (Ctrl-C on
`gateway serve` drains as an orchestrator's SIGTERM does):

1. `/readyz` turns 503 (the load balancer stops sending) and every new request is answered
   with a 503, `Connection: close` and `Retry-After` (calls metered as refusals; requests the
   gateway answers itself, such as count_tokens or /v1/models, too); the listener stays
   open, so clients are told rather than refused a connection;
2. calls in flight run to completion, up to `drain_seconds`;
3. at the deadline each remaining call is cancelled *as a shutdown*: the pipeline turns that
   into the surface's error (a stream's error event, or an error response) and a usage event
   with status `shutdown`; a call that lost that cancel (gateway/tasks.py) is cut again;
4. then uvicorn's own handler runs (a second signal runs it at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from gateway.errors import GatewayError
from gateway.tasks import RECANCEL

log = logging.getLogger("gateway")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShuttingDown(GatewayError):
    """A call refused, or cut, because this process is shutting down."""

    status = 503
    error_type = "api_error"
    default_code = "shutting_down"


class Drain:
    """The calls in flight (their tasks), and the drain that waits for them."""

    def __init__(self, seconds: float, *, cut_grace: float = 5.0, retry_after: int = 5) -> None:
        self.seconds = seconds
        self.cut_grace = cut_grace
        self.retry_after = retry_after
        self.draining = False  # no new calls: /readyz 503, new requests 503
        self.cutting = False  # the deadline passed: a cancellation of a call is a shutdown cut
        self._calls: set[asyncio.Task[Any]] = set()
        # The calls cut at the deadline that have not taken their cut yet: cancels sent each.
        self._cuts: dict[asyncio.Task[Any], int] = {}
        self._idle: asyncio.Event | None = None

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    def enter(self) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._calls.add(task)
        return task

    def leave(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._calls.discard(task)
            self._cuts.pop(task, None)
        if not self._calls and self._idle is not None:
            self._idle.set()

    def refusal(self) -> ShuttingDown:
        """For a request that arrives during the drain."""
        return ShuttingDown(
            "This gateway process is shutting down; retry the request.",
            headers={"retry-after": str(self.retry_after), "connection": "close"})

    def cut_error(self) -> ShuttingDown:
        """For a call still running at the drain's deadline."""
        return ShuttingDown(
            f"The gateway shut down before this call finished (drain time {self.seconds:g} s).",
            headers={"connection": "close"})

    def uncancel_if_cut(self) -> bool:
        """In a call's `except CancelledError`: True (and the cancellation withdrawn, so the
        call can still send its error) when the drain cut the call, False for any other
        cancellation (a client hang-up), which must go on."""
        if not self.cutting:
            return False
        task = asyncio.current_task()
        if task is not None:
            # Every cut it was sent (more than one when one was lost): none may linger.
            for _ in range(max(1, self._cuts.pop(task, 0))):
                if task.cancelling():
                    task.uncancel()
        return True

    async def run(self) -> None:
        """Stop taking calls, wait for those in flight up to the deadline, cut the rest and
        give them `cut_grace` to send their errors and be metered. A call is cut again until
        it takes its cut: asyncio.wait_for on Python 3.11 can lose a cancel (gateway/tasks.py),
        and a call that lost it ran on past the drain."""
        self.draining = True
        self._idle = asyncio.Event()
        if not self._calls:
            self._idle.set()
        log.info("shutting down: draining %d calls in flight (up to %g s)",
                 len(self._calls), self.seconds)
        try:
            await asyncio.wait_for(self._idle.wait(), self.seconds)
            log.info("drained: every call finished")
            return
        except TimeoutError:
            pass
        log.warning("drain time (%g s) is over: cutting %d calls still running",
                    self.seconds, len(self._calls))
        self.cutting = True
        self._cuts = dict.fromkeys(self._calls, 0)  # not the refusals sent from now on
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cut_grace
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            while not idle.done():
                left = deadline - loop.time()
                if left <= 0:
                    log.warning("%d calls did not end within %g s of being cut",
                                len(self._calls), self.cut_grace)
                    return
                for task in list(self._cuts):  # cut, and cut again until it takes it
                    self._cuts[task] += 1
                    task.cancel()
                await asyncio.wait({idle}, timeout=min(RECANCEL, left))
        finally:
            idle.cancel()


SignalHandler = Callable[[int, FrameType | None], Any]


def take_shutdown_signals(drain: Drain) -> Callable[[], None]:
    """Run `drain` on SIGTERM or SIGINT before the handler installed until now for that signal
    (the server's own), which a second signal calls at once. Returns the undo. A no-op off the
    main thread (servers in a test's thread), where signals cannot be handled."""
    loop = asyncio.get_running_loop()
    previous: dict[int, SignalHandler] = {
        int(sig): handler for sig in _SIGNALS if callable(handler := signal.getsignal(sig))}
    tasks: list[asyncio.Task[None]] = []  # keeps the drain's task alive
    signalled: list[int] = []

    def start(sig: int) -> None:
        task = loop.create_task(drain.run())
        task.add_done_callback(lambda _: previous[sig](sig, None))
        tasks.append(task)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        if signalled:
            previous[sig](sig, frame)  # the second signal: the server's own shutdown now
            return
        signalled.append(sig)
        loop.call_soon_threadsafe(start, sig)

    taken: list[int] = []
    try:
        for sig in previous:
            signal.signal(sig, on_signal)
            taken.append(sig)
    except ValueError:  # not the main thread
        return lambda: None

    def undo() -> None:
        for sig in taken:
            with contextlib.suppress(ValueError):
                signal.signal(sig, previous[sig])

    return undo
