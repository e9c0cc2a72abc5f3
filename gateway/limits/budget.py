"""Budgets: a cap in USD per key or team per UTC day or month.

Checked before the upstream call against the running spend, charged after from the metered
cost. The running spend starts, for each period, from what the usage table says was already
spent (so a restart forgets nothing) and then grows in Redis (shared by every process, one
INCRBYFLOAT per charge) or in-process without Redis. A request that starts under the cap may
end a little over it; the next one is refused. While Redis is down (gateway/limits/redislink.py)
the spend goes on from the last value seen there, and what is charged meanwhile is added to
Redis when it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.keys.principal import Budget, Period
from gateway.limits.redislink import FAILURES, RedisLink

log = logging.getLogger("gateway.limits")

_PREFIX = "switchyard:spend:"
_TTL_SECONDS = 40 * 86400

# Spend already recorded in the database for `subject` since `since`; raises SpendUnknown
# when it cannot be read.
SpendLoader = Callable[[str, datetime], Awaitable[float]]
_RETRY_SECONDS = 10.0  # how long a failed read of the recorded spend is not tried again


class SpendUnknown(Exception):
    """The recorded spend could not be read (the database is down or too slow)."""


@dataclass(frozen=True, slots=True)
class Exhausted:
    budget: Budget
    spent: float
    resets_at: datetime

    def message(self) -> str:
        kind, _, name = self.budget.subject.partition(":")
        return (
            f"The {self.budget.period}ly budget of {kind} '{name}' is exhausted: spent "
            f"${self.spent:.4f} of ${self.budget.usd:.2f}. It resets at "
            f"{self.resets_at.strftime('%Y-%m-%dT%H:%M:%SZ')}."
        )


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime, str]:
    """Start, end and id of the UTC calendar period containing `now`."""
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.fromtimestamp(start.timestamp() + 86400, UTC)
        return start, end, start.strftime("%Y-%m-%d")
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(
        month=start.month + 1)
    return start, end, start.strftime("%Y-%m")


class BudgetTracker:
    def __init__(
        self, redis_url: str | RedisLink | None, load_spend: SpendLoader,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._load = load_spend
        self._clock = clock
        self._owns_link = isinstance(redis_url, str)
        self._link = RedisLink(redis_url) if isinstance(redis_url, str) else redis_url
        self._local: dict[str, float] = {}  # without Redis: the whole spend
        self._seen: dict[str, float] = {}  # with Redis: its last value
        self._unsent: dict[str, float] = {}  # charged while Redis was down
        self._unseeded: dict[str, float] = {}  # charged while the recorded spend was unknown
        self._retry_at: dict[str, float] = {}  # when to read an unknown recorded spend again

    async def close(self) -> None:
        if self._link is not None and self._owns_link:
            await self._link.close()

    async def check(self, budgets: Sequence[Budget]) -> Exhausted | None:
        """The first exhausted budget among `budgets`, or None if all have room."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        for budget in budgets:
            start, end, period_id = period_bounds(budget.period, now)
            spent = await self._spent(budget.subject, period_id, start)
            if spent is None:  # only what this process charged since: better than refusing
                spent = self._unseeded.get(_key(budget.subject, period_id), 0.0)
            if spent >= budget.usd:
                return Exhausted(budget, spent, end)
        return None

    async def charge(self, budgets: Sequence[Budget], usd: float) -> None:
        if usd <= 0:
            return
        now = datetime.fromtimestamp(self._clock(), UTC)
        for budget in budgets:
            start, _, period_id = period_bounds(budget.period, now)
            name = _key(budget.subject, period_id)
            if await self._spent(budget.subject, period_id, start) is None:
                self._unseeded[name] = self._unseeded.get(name, 0.0) + usd
                continue
            if self._link is None:
                self._local[name] = self._local.get(name, 0.0) + usd
                continue
            if self._link.up:
                amount = usd + self._unsent.get(name, 0.0)
                try:
                    self._seen[name] = float(await self._link.client.incrbyfloat(name, amount))
                    self._unsent.pop(name, None)
                    continue
                except FAILURES as exc:
                    self._link.failed(exc, "charging a budget")
            self._unsent[name] = self._unsent.get(name, 0.0) + usd

    async def _spent(self, subject: str, period_id: str, start: datetime) -> float | None:
        """The period's running spend, seeded from the recorded spend; None while that cannot
        be read. No seed is stored then: a 0 in Redis would outlive the outage for the whole
        period on every replica. What is charged meanwhile joins the seed once it is read
        (errs high if the database also recorded those calls by then)."""
        name = _key(subject, period_id)
        if self._link is not None:
            if self._link.usable:
                try:
                    async with self._link.deadline():
                        value = await self._link.client.get(name)
                    if value is None:
                        seed = await self._recorded(subject, start, name)
                        if seed is None:
                            return None
                        async with self._link.deadline():
                            await self._link.client.set(name, seed, nx=True, ex=_TTL_SECONDS)
                            value = await self._link.client.get(name)
                    self._seen[name] = float(value or 0.0)
                    self._hold_unseeded(name)
                    return self._seen[name] + self._unsent.get(name, 0.0)
                except FAILURES as exc:
                    self._link.failed(exc, "reading a budget")
            if name not in self._seen:
                seed = await self._recorded(subject, start, name)
                if seed is None:
                    return None
                self._seen[name] = seed
            self._hold_unseeded(name)
            return self._seen[name] + self._unsent.get(name, 0.0)
        if name not in self._local:
            seed = await self._recorded(subject, start, name)
            if seed is None:
                return None
            self._local[name] = seed + self._unseeded.pop(name, 0.0)
        return self._local[name]

    async def _recorded(self, subject: str, start: datetime, name: str) -> float | None:
        """The recorded spend, or None when it cannot be read now (and then not asked again
        for _RETRY_SECONDS: every call of the period would otherwise wait on it)."""
        now = self._clock()
        if now < self._retry_at.get(name, 0.0):
            return None
        try:
            seed = await self._load(subject, start)
        except SpendUnknown:
            self._retry_at[name] = now + _RETRY_SECONDS
            return None
        self._retry_at.pop(name, None)
        return seed

    def _hold_unseeded(self, name: str) -> None:
        """Charges made before the seed was known: added to Redis with the next charge."""
        held = self._unseeded.pop(name, None)
        if held:
            self._unsent[name] = self._unsent.get(name, 0.0) + held


def _key(subject: str, period_id: str) -> str:
    return f"{_PREFIX}{subject}:{period_id}"
