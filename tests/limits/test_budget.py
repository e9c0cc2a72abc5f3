"""Budgets: seeded from recorded spend, checked before, charged after; shared via Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from gateway.keys.principal import Budget
from gateway.limits.budget import BudgetTracker, SpendUnknown, period_bounds

REDIS_URL = "redis://127.0.0.1:6379/0"
NOW = datetime(2026, 11, 29, 15, 30, tzinfo=UTC).timestamp()


class Ledger:
    """Stands in for the usage table: spend recorded per subject before the tracker starts."""

    def __init__(self, spent: dict[str, float]) -> None:
        self.spent = spent
        self.calls: list[tuple[str, datetime]] = []

    async def __call__(self, subject: str, since: datetime) -> float:
        self.calls.append((subject, since))
        return self.spent.get(subject, 0.0)


def test_periods_are_utc_calendar_days_and_months() -> None:
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    start, end, pid = period_bounds("day", now)
    assert (start.day, end, pid) == (31, datetime(2027, 1, 1, tzinfo=UTC), "2026-12-31")
    start, end, pid = period_bounds("month", now)
    assert (start, end, pid) == (datetime(2026, 12, 1, tzinfo=UTC),
                                 datetime(2027, 1, 1, tzinfo=UTC), "2026-12")


@pytest.mark.parametrize("redis_url", [None, REDIS_URL])
async def test_spend_is_seeded_checked_and_charged(redis_url: str | None) -> None:
    subject = f"team:t-{uuid.uuid4().hex[:8]}"
    budget = Budget(subject, usd=1.0, period="month")
    ledger = Ledger({subject: 0.75})
    tracker = BudgetTracker(redis_url, ledger, clock=lambda: NOW)
    assert await tracker.check([budget]) is None
    assert ledger.calls == [(subject, datetime(2026, 11, 1, tzinfo=UTC))]
    await tracker.charge([budget], 0.30)
    exhausted = await tracker.check([budget])
    assert exhausted is not None and exhausted.spent == pytest.approx(1.05)
    message = exhausted.message()
    assert "team" in message and subject.split(":")[1] in message
    assert "2026-12-01T00:00:00Z" in message
    await tracker.close()


async def test_two_processes_share_one_running_spend_through_redis() -> None:
    subject = f"key:k-{uuid.uuid4().hex[:8]}"
    budget = Budget(subject, usd=0.5, period="day")
    ledger = Ledger({})
    a = BudgetTracker(REDIS_URL, ledger, clock=lambda: NOW)
    b = BudgetTracker(REDIS_URL, ledger, clock=lambda: NOW)
    for _ in range(3):
        await a.charge([budget], 0.1)
        await b.charge([budget], 0.1)
    assert (await a.check([budget])) is not None
    assert (await b.check([budget])) is not None
    await a.close()
    await b.close()


async def test_a_new_day_starts_from_the_ledger_again() -> None:
    subject = f"key:k-{uuid.uuid4().hex[:8]}"
    budget = Budget(subject, usd=1.0, period="day")
    now = [NOW]
    tracker = BudgetTracker(None, Ledger({}), clock=lambda: now[0])
    await tracker.charge([budget], 2.0)
    assert await tracker.check([budget]) is not None
    now[0] += 86400
    assert await tracker.check([budget]) is None


class FlakyLedger(Ledger):
    """The usage table while the database is down: reads fail until `up` is set."""

    def __init__(self, spent: dict[str, float]) -> None:
        super().__init__(spent)
        self.up = False

    async def __call__(self, subject: str, since: datetime) -> float:
        self.calls.append((subject, since))
        if not self.up:
            raise SpendUnknown("database down")
        return self.spent.get(subject, 0.0)


@pytest.mark.parametrize("redis_url", [None, REDIS_URL])
async def test_a_spend_that_cannot_be_read_is_never_stored_as_zero(
        redis_url: str | None) -> None:
    """The ledger is down when a period's first call comes: the tracker counts what it charges
    meanwhile, stores no seed (in Redis a seed of 0 would outlive the outage for the whole
    period, on every replica) and asks the ledger again after a pause."""
    subject = f"team:t-{uuid.uuid4().hex[:8]}"
    budget = Budget(subject, usd=1.0, period="month")
    ledger = FlakyLedger({subject: 0.75})
    now = [NOW]
    tracker = BudgetTracker(redis_url, ledger, clock=lambda: now[0])
    assert await tracker.check([budget]) is None  # unknown: the call goes ahead
    await tracker.charge([budget], 0.30)
    assert len(ledger.calls) == 1  # not asked again on every call while it is down
    if redis_url is not None:
        import redis.asyncio as aioredis
        client = aioredis.Redis.from_url(redis_url)
        _, _, period_id = period_bounds("month", datetime.fromtimestamp(NOW, UTC))
        assert await client.get(f"switchyard:spend:{subject}:{period_id}") is None
        await client.aclose()
    ledger.up = True
    now[0] += 11  # past the pause: the ledger is read again
    exhausted = await tracker.check([budget])
    assert exhausted is not None and exhausted.spent == pytest.approx(1.05)
    await tracker.charge([budget], 0.10)
    exhausted = await tracker.check([budget])
    assert exhausted is not None and exhausted.spent == pytest.approx(1.15)
    await tracker.close()
