"""Health of each target: a circuit breaker per (provider, upstream model), Retry-After
cooldowns, and a moving average of time to first token for the `latency` strategy.

Breaker: CLOSED passes traffic. It OPENs after `consecutive_failures` in a row, or when the
failure ratio over the last `window` seconds reaches `failure_ratio` (with at least
`min_requests`). OPEN sheds traffic for `cooldown` seconds, then lets exactly one probe through
(HALF_OPEN): its success closes the breaker, its failure opens it again; outcomes of requests
still in flight when it opened change nothing. A Retry-After from the upstream is a separate
cooldown that the target honours whatever its breaker says.

The board is in-process and synchronous (cheap on the hot path). `gateway.routing.shared` makes
several processes and replicas agree through Redis by draining `deltas` and calling `adopt`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.config import BreakerConfig

_BUCKETS = 10


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class Delta:
    """Outcomes since the last sync, in the form the shared store merges."""

    ok: int = 0
    failed: int = 0
    trailing_failures: int = 0
    had_success: bool = False
    cooldown_until: float = 0.0
    trip_until: float = 0.0


@dataclass(slots=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    opened_until: float = 0.0
    cooldown_until: float = 0.0
    consecutive: int = 0
    probe_started: float | None = None
    # (bucket id, ok, failed), newest last
    window: deque[list[int]] = field(default_factory=deque)

    def counts(self) -> tuple[int, int]:
        return sum(b[1] for b in self.window), sum(b[2] for b in self.window)


ProbeGate = Callable[[str, float], Awaitable[bool]]


class HealthBoard:
    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._breakers: dict[str, Breaker] = {}
        self._deltas: dict[str, Delta] = {}
        self._bucket_len = config.window / _BUCKETS
        # Set by the shared store so only one process in a cluster sends the probe.
        self.probe_gate: ProbeGate | None = None
        # provider -> (quota kind, until): accounts this process saw run out of quota. The
        # trip itself is per target and shared; this only names why, for /metrics and /readyz.
        self._quota: dict[str, tuple[str, float]] = {}

    # ---- the hot path -----------------------------------------------------------------

    def usable(self, key: str) -> bool:
        """Could `key` take a request now? (No side effects; see `acquire`.)"""
        b = self._breakers.get(key)
        if b is None:
            return True
        now = self._clock()
        if b.cooldown_until > now:
            return False
        if b.state is BreakerState.CLOSED:
            return True
        if b.state is BreakerState.OPEN:
            return now >= b.opened_until
        return b.probe_started is None or now - b.probe_started > self.config.cooldown

    def closed(self, key: str) -> bool:
        """The common case, answered without a coroutine: closed and not cooling down."""
        b = self._breakers.get(key)
        return b is None or (
            b.state is BreakerState.CLOSED
            and (not b.cooldown_until or b.cooldown_until <= self._clock())
        )

    async def acquire(self, key: str) -> bool:
        """May this request use `key`? Claims the single probe of a half-open breaker."""
        b = self._breakers.get(key)
        if b is None or (b.state is BreakerState.CLOSED and b.cooldown_until <= self._clock()):
            return True
        if not self.usable(key):
            return False
        if b.state is BreakerState.CLOSED:
            return True
        now = self._clock()
        b.state = BreakerState.HALF_OPEN
        b.probe_started = now
        # With a shared store, another process may already hold this probe.
        return self.probe_gate is None or await self.probe_gate(key, self.config.cooldown)

    def in_cooldown(self, key: str) -> float:
        """Seconds until an upstream's Retry-After ends (0 if none)."""
        b = self._breakers.get(key)
        return max(0.0, b.cooldown_until - self._clock()) if b else 0.0

    def record_success(self, key: str) -> None:
        b = self._breakers.get(key)
        if b is None:
            b = self._breakers[key] = Breaker()
        self._count(b, ok=True)
        b.consecutive = 0
        if self._probing(b, self._clock()):
            self._close(b)
        d = self._delta(key)
        d.ok += 1
        d.had_success = True
        d.trailing_failures = 0

    def record_failure(self, key: str, retry_after: float | None = None) -> None:
        b = self._breakers.setdefault(key, Breaker())
        now = self._clock()
        self._count(b, ok=False)
        b.consecutive += 1
        d = self._delta(key)
        d.failed += 1
        d.trailing_failures += 1
        if retry_after:
            b.cooldown_until = max(b.cooldown_until, now + retry_after)
            d.cooldown_until = b.cooldown_until
        if self._probing(b, now) or (b.state is BreakerState.CLOSED and self._should_open(b)):
            self._open(b, now + self.config.cooldown)

    def trip(self, key: str, seconds: float, *, share: bool = True) -> None:
        """Open now, for `seconds` (no point retrying soon). `share=False` keeps it to this
        process (our own credentials were refused: other replicas may hold a good key); its
        cooldown keeps the target out whatever the cluster's breaker says."""
        b = self._breakers.setdefault(key, Breaker())
        until = self._clock() + seconds
        self._open(b, until)
        b.cooldown_until = max(b.cooldown_until, until)  # not even panic routing uses it
        if share:
            d = self._delta(key)
            d.trip_until = d.cooldown_until = until

    def note_quota(self, provider: str, kind: str, seconds: float) -> None:
        self._quota[provider] = (kind, self._clock() + seconds)

    def quota_left(self, provider: str) -> float:
        """Seconds until `provider`'s out-of-quota cooldown ends, as this process saw it."""
        found = self._quota.get(provider)
        return max(0.0, found[1] - self._clock()) if found else 0.0

    def quota_cooldowns(self) -> dict[str, tuple[str, float]]:
        """provider -> (quota kind, seconds left) for every account still out of quota."""
        now = self._clock()
        return {name: (kind, until - now) for name, (kind, until) in self._quota.items()
                if until > now}

    def state(self, key: str) -> BreakerState:
        b = self._breakers.get(key)
        return b.state if b else BreakerState.CLOSED

    # ---- sharing ----------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def drain_deltas(self) -> dict[str, Delta]:
        deltas, self._deltas = self._deltas, {}
        return deltas

    def restore_deltas(self, unsent: dict[str, Delta]) -> None:
        """Put back outcomes a sync could not push, under those recorded since, so a Redis
        hiccup loses no failure (the other replicas would never hear of it)."""
        for key, old in unsent.items():
            new = self._deltas.get(key)
            if new is None:
                self._deltas[key] = old
                continue
            new.ok += old.ok
            new.failed += old.failed
            if not new.had_success:  # the failures since continue the older run
                new.trailing_failures += old.trailing_failures
            new.had_success = new.had_success or old.had_success
            new.cooldown_until = max(new.cooldown_until, old.cooldown_until)
            new.trip_until = max(new.trip_until, old.trip_until)

    def adopt(self, key: str, state: str, opened_until: float, cooldown_until: float) -> None:
        """Take the cluster's view of a breaker (from Redis) over our own."""
        shared = BreakerState(state)
        b = self._breakers.setdefault(key, Breaker())
        b.cooldown_until = max(b.cooldown_until, cooldown_until)
        if shared is BreakerState.CLOSED:
            if b.state is not BreakerState.CLOSED:
                self._close(b)
        elif shared is BreakerState.OPEN and (
            b.state is BreakerState.CLOSED or opened_until > b.opened_until
        ):
            b.state = BreakerState.OPEN
            b.opened_until = opened_until
            b.probe_started = None

    # ---- internals --------------------------------------------------------------------

    def _delta(self, key: str) -> Delta:
        d = self._deltas.get(key)
        if d is None:
            d = self._deltas[key] = Delta()
        return d

    def _count(self, b: Breaker, ok: bool) -> None:
        bucket = int(self._clock() / self._bucket_len)
        while b.window and b.window[0][0] <= bucket - _BUCKETS:
            b.window.popleft()
        if not b.window or b.window[-1][0] != bucket:
            b.window.append([bucket, 0, 0])
        b.window[-1][1 if ok else 2] += 1

    @staticmethod
    def _probing(b: Breaker, now: float) -> bool:
        """Is an outcome now the probe's? Answers to requests that were in flight when the
        breaker opened are not: like the shared script, they neither close nor reopen it."""
        return b.state is BreakerState.HALF_OPEN or (
            b.state is BreakerState.OPEN and now >= b.opened_until
        )

    def _should_open(self, b: Breaker) -> bool:
        if b.consecutive >= self.config.consecutive_failures:
            return True
        ok, failed = b.counts()
        total = ok + failed
        return total >= self.config.min_requests and failed / total >= self.config.failure_ratio

    def _open(self, b: Breaker, until: float) -> None:
        b.state = BreakerState.OPEN
        b.opened_until = max(until, b.opened_until)
        b.probe_started = None

    @staticmethod
    def _close(b: Breaker) -> None:
        b.state = BreakerState.CLOSED
        b.consecutive = 0
        b.probe_started = None
        b.window.clear()


class LatencyTracker:
    """Time to first token per target, for the `latency` strategy: a stream's first token,
    and for non-streamed calls the whole answer (their first token, as the client sees it).
    The two differ by the answer's length, so each kind of call is ranked by its own average."""

    def __init__(self, alpha: float = 0.2) -> None:
        self.streamed = LatencyAverage(alpha)
        self.whole = LatencyAverage(alpha)


class LatencyAverage:
    """Exponential moving average per target key."""

    def __init__(self, alpha: float = 0.2) -> None:
        self._alpha = alpha
        self._ewma: dict[str, float] = {}

    def observe(self, key: str, seconds: float) -> None:
        old = self._ewma.get(key)
        self._ewma[key] = seconds if old is None else old + self._alpha * (seconds - old)

    def get(self, key: str) -> float | None:
        return self._ewma.get(key)
