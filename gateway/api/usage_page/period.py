"""The period the page shows: inclusive UTC dates, from the picker or a quick range.

People pick days, so both ends are inclusive ("today" is from=today&to=today) and the SQL
range is [first 00:00, day after last 00:00). A bad value is not an exception: the page keeps
the default period and says what was wrong, in the page itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

QUICK_RANGES = {"today": "Today", "7d": "7 days", "30d": "30 days", "month": "This month"}
DEFAULT_RANGE = "30d"
MAX_DAYS = 5 * 366  # rollups are kept for years; beyond this a chart point is unreadable
HOURLY_UP_TO_DAYS = 2  # shorter periods are charted per hour, longer ones per day


@dataclass(frozen=True, slots=True)
class Period:
    first: date
    last: date  # inclusive
    quick: str | None = None  # the quick range it came from, if any

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return datetime.combine(self.last + timedelta(days=1), time(), UTC)

    @property
    def hourly(self) -> bool:
        return (self.last - self.first).days < HOURLY_UP_TO_DAYS

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def quick_period(name: str, today: date) -> Period:
    if name == "today":
        return Period(today, today, name)
    if name == "7d":
        return Period(today - timedelta(days=6), today, name)
    if name == "month":
        return Period(today.replace(day=1), today, name)
    return Period(today - timedelta(days=29), today, "30d")


def parse_period(params: Mapping[str, str], today: date) -> tuple[Period, str | None]:
    """The period asked for, or the default one and a message saying what was wrong."""
    quick = params.get("range")
    if quick:
        if quick not in QUICK_RANGES:
            return quick_period(DEFAULT_RANGE, today), (
                f"range: expected one of {', '.join(QUICK_RANGES)}")
        return quick_period(quick, today), None
    raw_first, raw_last = params.get("from"), params.get("to")
    if not raw_first and not raw_last:
        return quick_period(DEFAULT_RANGE, today), None
    try:
        last = _day(raw_last, "to") if raw_last else today
        first = _day(raw_first, "from") if raw_first else last - timedelta(days=29)
    except ValueError as exc:
        return quick_period(DEFAULT_RANGE, today), str(exc)
    if first > last:
        return quick_period(DEFAULT_RANGE, today), (
            f"from ({first}) is after to ({last}); both days are included")
    if (last - first).days >= MAX_DAYS:
        return quick_period(DEFAULT_RANGE, today), f"at most {MAX_DAYS} days at a time"
    return Period(first, last), None


def _day(value: str, name: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: expected a date as YYYY-MM-DD, got {value[:40]!r}") from None
    if not date(1970, 1, 1) <= day <= date(9000, 1, 1):
        raise ValueError(f"{name}: must be between 1970-01-01 and 9000-01-01")
    return day
