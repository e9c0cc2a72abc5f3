"""Failover: try a request's targets in the policy's order until one answers.

What falls over (an `UpstreamError` with `retryable`): connection refused or reset, timeouts,
429, 5xx, a 2xx that is not a valid answer, OpenRouter's 402, and our own key refused
(401/403: that provider is also taken out of rotation for a while and an operator is told).
What does not: the client's own 400/404/422, returned at once.

An account out of quota (`UpstreamError.quota`: Ollama's session or weekly usage limit, a spent
balance on DeepSeek or Ollama) answers with no Retry-After and stays out for hours, so every
target of that provider is tripped for `breaker.quota_cooldown[kind]` (shared across replicas
like any trip), logged once; when it ends, one probe tells whether the account is back.

Targets whose breaker is open are skipped; if every target's is, the breakers are ignored
("panic" routing, as in Envoy) so a false alarm never turns into an outage, while an upstream's
explicit Retry-After is always honoured. After a full round of failures the next round waits an
exponential backoff with full jitter. `max_attempts` caps the attempts and `deadline` the
request's total time.

Failover is the one owner of health bookkeeping: each attempt's outcome goes to the breaker
exactly once, and its latency to the tracker. A non-streamed attempt is settled when it
returns; a stream only when it ends (`Served.settle`), so a stream that breaks after its first
token counts as one failure, not a success and then a failure. Latency is time to first token:
for a stream, the attempt returns at its first token; for a non-streamed call, the whole answer
is its first token. The two are kept apart (see `LatencyTracker`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.config import RoutingConfig
from gateway.errors import UpstreamError
from gateway.routing.health import HealthBoard, LatencyTracker
from gateway.routing.policy import RouteTable, Target

log = logging.getLogger("gateway.failover")

T = TypeVar("T")


@dataclass(slots=True)
class Attempts:
    """Which targets were tried and how each ended, e.g. `ollama:503,deepseek:200`, and the
    time spent waiting on upstreams (the rest of a call's time is the gateway's own)."""

    items: list[tuple[str, str]] = field(default_factory=list)
    upstream_s: float = 0.0

    def add(self, provider: str, outcome: str) -> None:
        self.items.append((provider, outcome))

    def header(self) -> str:
        return ",".join(f"{p}:{o}" for p, o in self.items)


@dataclass(slots=True)
class Served(Generic[T]):
    result: T
    target: Target
    attempts: Attempts
    _settle: Callable[[UpstreamError | None], None] | None = None

    def settle(self, error: UpstreamError | None) -> None:
        """A stream ended: record its outcome on the breaker (once; later calls do nothing)."""
        settle, self._settle = self._settle, None
        if settle is not None:
            settle(error)


class AllTargetsFailed(Exception):
    """Carries the last upstream error and every attempt, for the response and metering."""

    def __init__(self, error: UpstreamError, attempts: Attempts) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts


Attempt = Callable[[Target, float], Awaitable[T]]


class Failover:
    def __init__(
        self,
        routes: RouteTable,
        board: HealthBoard,
        latency: LatencyTracker,
        config: RoutingConfig,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes = routes
        self.board = board
        self.latency = latency
        self.config = config
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock

    async def run(
        self, model: str, pinned: str | None, attempt: Attempt[T], *, streamed: bool = False
    ) -> Served[T]:
        """Call `attempt(target, seconds_left)` on targets in order until one succeeds.
        With `streamed`, success is recorded when the caller settles the stream."""
        deadline = self._clock() + self.config.deadline
        latency = self.latency.streamed if streamed else self.latency.whole
        plan = self.routes.plan(model, pinned, latency=latency.get, rng=self._rng)
        attempts = Attempts()
        last: UpstreamError | None = None
        tries = rounds = 0
        while tries < self.config.max_attempts:
            candidates, panic = self._candidates(plan)
            if not candidates:
                wait = min(self.board.in_cooldown(t.key) for t in plan)
                if wait > self.config.max_cooldown_wait or self._clock() + wait > deadline:
                    raise AllTargetsFailed(last or _cooling(plan[0], wait), attempts)
                await self._sleep(wait)
                continue
            for target in candidates:
                left = deadline - self._clock()
                if tries >= self.config.max_attempts or left <= 0:
                    break
                if not (panic or self.board.closed(target.key)
                        or await self.board.acquire(target.key)):
                    continue
                tries += 1
                began = self._clock()
                try:
                    result = await attempt(target, left)
                except UpstreamError as err:
                    attempts.upstream_s += self._clock() - began
                    attempts.add(target.provider.name, err.outcome)
                    last = err
                    self._note_failure(target, err)
                    if not err.retryable:
                        raise AllTargetsFailed(err, attempts) from None
                    continue
                except BaseException:
                    attempts.upstream_s += self._clock() - began
                    raise
                took = self._clock() - began
                attempts.upstream_s += took
                latency.observe(target.key, took)
                attempts.add(target.provider.name, "200")
                if streamed:
                    return Served(result, target, attempts, self._settler(target))
                self.board.record_success(target.key)
                return Served(result, target, attempts)
            if last is None:  # every candidate's probe was taken by someone else
                last = _cooling(plan[0], self.config.breaker.cooldown)
            rounds += 1
            delay = self._backoff(rounds)
            if tries >= self.config.max_attempts or self._clock() + delay >= deadline:
                break
            await self._sleep(delay)
        assert last is not None
        raise AllTargetsFailed(last, attempts)

    def _settler(self, target: Target) -> Callable[[UpstreamError | None], None]:
        def settle(error: UpstreamError | None) -> None:
            if error is None:
                self.board.record_success(target.key)
            else:
                self._note_failure(target, error)
        return settle

    def _candidates(self, plan: list[Target]) -> tuple[list[Target], bool]:
        usable = [t for t in plan if self.board.usable(t.key)]
        if usable:
            return usable, False
        return [t for t in plan if self.board.in_cooldown(t.key) == 0], True

    def _backoff(self, rounds: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^rounds))."""
        ceiling = min(self.config.backoff_max, self.config.backoff_base * (2 ** rounds))
        return self._rng.uniform(0, ceiling)

    def _note_failure(self, target: Target, err: UpstreamError) -> None:
        if err.quota is not None:
            self._out_of_quota(target, err.quota)
        elif err.upstream_status in (401, 403):
            seconds = self.config.breaker.auth_failure_cooldown
            log.error(
                "provider %s refused the gateway's API key (HTTP %s): check its key in the "
                "environment or config; its traffic goes elsewhere for %.0f s",
                target.provider.name, err.upstream_status, seconds,
            )
            for other in self.routes.all_targets():  # this replica's key: not shared
                if other.provider.name == target.provider.name:
                    self.board.trip(other.key, seconds, share=False)
        elif err.retryable:
            self.board.record_failure(target.key, err.retry_after)
        else:
            self.board.record_success(target.key)  # it answered; the request was at fault

    def _out_of_quota(self, target: Target, quota: str) -> None:
        cooldowns = self.config.breaker.quota_cooldown
        seconds = cooldowns.get(quota) or max(cooldowns.values(), default=3600.0)
        name = target.provider.name
        already = self.board.quota_left(name) > 0
        for other in self.routes.all_targets():
            if other.provider.name == name:
                self.board.trip(other.key, seconds)
        self.board.note_quota(name, quota, seconds)
        if not already:
            log.warning(
                "provider %s is out of quota (%s); its traffic goes elsewhere for %.0f s, "
                "then one request probes it", name, quota, seconds,
            )


def _cooling(target: Target, seconds: float) -> UpstreamError:
    return UpstreamError(
        "every upstream for this model is cooling down after failures; retry shortly",
        provider=target.provider.name, upstream_status=503, code="upstreams_unavailable",
        retry_after=max(seconds, 1.0),
    )
