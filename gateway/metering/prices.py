"""The price book: what a token cost at a given provider, for a given model, at a given time.

The one source of prices (metering, budgets, `cheapest` routing, `gateway prices`). Prices
change at dated instants (to the minute: DeepSeek's 2026-09-10 change took effect at 04:00
UTC), by time of day (peak windows) and by calendar (Chinese public holidays are off-peak), and
some are still unconfirmed, so all of it lives in data (`prices.yaml` shipped beside this
module, each entry with its source; overridable with `prices:` in the config), never as
constants in code. A price is a pure function of (provider, model, instant): tests and replays
price a row from its own time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SAME_AS = "same_as"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Calendar(_Strict):
    """Days off (e.g. Chinese public holidays), as dates local to `utc_offset_hours`:
    single dates or `YYYY-MM-DD..YYYY-MM-DD` ranges (inclusive)."""

    utc_offset_hours: float = 0.0
    source: str | None = None
    days: list[date | str] = Field(default_factory=list)

    @field_validator("days")
    @classmethod
    def _ranges(cls, value: list[date | str]) -> list[date | str]:
        for item in value:
            _expand(item)
        return value

    def dates(self) -> frozenset[date]:
        return frozenset(d for item in self.days for d in _expand(item))

    def contains(self, at: datetime) -> bool:
        local = at + timedelta(hours=self.utc_offset_hours)
        return local.date() in self.dates()


class Window(_Strict):
    """Recurring UTC hours, e.g. peak time: `hours_utc` ranges are start-inclusive. Days of
    `except_calendar` (e.g. public holidays) are outside the window."""

    days: list[Weekday] = Field(default_factory=lambda: list(_WEEKDAYS))
    hours_utc: list[str]
    except_calendar: str | None = None

    @field_validator("hours_utc")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for item in value:
            _parse_range(item)
        return value

    def contains(self, at: datetime) -> bool:
        if _WEEKDAYS[at.weekday()] not in self.days:
            return False
        now = at.time()
        return any(start <= now < end or (end == time.max and now >= start)
                   for start, end in map(_parse_range, self.hours_utc))


class PeakRule(_Strict):
    windows: str
    multiplier: float = Field(gt=0)


class PriceEntry(_Strict):
    """USD per 1M tokens from `from` (a UTC instant, to the minute; a bare date is 00:00 UTC)
    until the next entry's start; `peak` prices are the off-peak ones times the multiplier."""

    from_: datetime = Field(alias="from")
    cache_hit: float = Field(ge=0)
    cache_miss: float = Field(ge=0)
    output: float = Field(ge=0)
    peak: PeakRule | None = None
    source: str | None = None
    note: str | None = None

    @field_validator("from_", mode="before")
    @classmethod
    def _instant(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _utc(self) -> PriceEntry:
        if self.from_.tzinfo is None:
            object.__setattr__(self, "from_", self.from_.replace(tzinfo=UTC))
        return self


class PriceBookData(_Strict):
    """The shape of `prices.yaml` and of the config's `prices:` overrides.

    `providers.<provider>` maps canonical model -> entries; the key `same_as: <provider>`
    borrows another provider's prices for models it does not list itself."""

    windows: dict[str, Window] = Field(default_factory=dict)
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    providers: dict[str, dict[str, list[PriceEntry] | str]] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _same_as_only(
        cls, value: dict[str, dict[str, list[PriceEntry] | str]]
    ) -> dict[str, dict[str, list[PriceEntry] | str]]:
        for provider, models in value.items():
            for model, entries in models.items():
                if isinstance(entries, str) and model != SAME_AS:
                    raise ValueError(f"{provider}.{model}: expected a list of price entries")
                if model == SAME_AS and not isinstance(entries, str):
                    raise ValueError(f"{provider}.{SAME_AS}: expected a provider name")
        return value


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens in force at one instant (peak multiplier already applied)."""

    cache_hit: float
    cache_miss: float
    output: float
    peak: bool = False


class PriceBook:
    def __init__(self, data: PriceBookData, kinds: dict[str, str] | None = None,
                 billed_as: dict[str, str] | None = None) -> None:
        """`kinds` maps configured provider names to their kind (`ollama-backup` -> `ollama`),
        so a second account of a kind is priced like the first unless listed itself.
        `billed_as` names the book an account reads first (`ollama` -> `ollama-per-token`)."""
        self._billed_as = billed_as or {}
        self._memo_minute = -1
        self._memo: dict[tuple[str, str], Price | None] = {}
        self._windows = data.windows
        self._calendars = {name: c.dates() for name, c in data.calendars.items()}
        self._offsets = {name: c.utc_offset_hours for name, c in data.calendars.items()}
        self._kinds = kinds or {}
        self._entries: dict[tuple[str, str], list[PriceEntry]] = {}
        self._same_as: dict[str, str] = {}
        for provider, models in data.providers.items():
            for model, entries in models.items():
                if isinstance(entries, str):
                    self._same_as[provider] = entries
                else:
                    self._entries[(provider, model)] = sorted(entries, key=lambda e: e.from_)
        for (provider, model), entries in self._entries.items():
            for entry in entries:
                if entry.peak is not None and entry.peak.windows not in self._windows:
                    raise ValueError(
                        f"prices.providers.{provider}.{model}: unknown peak windows "
                        f"{entry.peak.windows!r}"
                    )
        for name, window in self._windows.items():
            if window.except_calendar and window.except_calendar not in self._calendars:
                raise ValueError(
                    f"prices.windows.{name}: unknown calendar {window.except_calendar!r}")

    @classmethod
    def load(cls, overrides: PriceBookData | None = None,
             kinds: dict[str, str] | None = None,
             billed_as: dict[str, str] | None = None) -> PriceBook:
        """The shipped book with `overrides` laid over it (per provider and model)."""
        text = resources.files("gateway.metering").joinpath("prices.yaml").read_text()
        shipped = PriceBookData.model_validate(yaml.safe_load(text))
        return cls(merge(shipped, overrides) if overrides else shipped, kinds, billed_as)

    def price(self, provider: str, model: str, at: datetime) -> Price | None:
        """The price in force at `at` (aware or UTC-naive), or None if the book has none.

        Prices change only at minute boundaries (entry starts and peak windows are given to
        the minute), so each (provider, model) is looked up once a minute: every usage row
        asks, on the request's path."""
        at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
        return self.price_at(provider, model, at.timestamp())

    def price_at(self, provider: str, model: str, epoch: float) -> Price | None:
        """`price` at a Unix time: what a usage row asks, with no datetime to convert."""
        minute = int(epoch // 60)
        if minute != self._memo_minute:
            self._memo_minute = minute
            self._memo.clear()
        key = (provider, model)
        if key in self._memo:
            return self._memo[key]
        found = self._memo[key] = self._price(
            provider, model, datetime.fromtimestamp(minute * 60, UTC))
        return found

    def _price(self, provider: str, model: str, at: datetime) -> Price | None:
        current = self.entry(provider, model, at)
        if current is None:
            return None
        factor, peak = 1.0, False
        if current.peak is not None and self._in_window(current.peak.windows, at):
            factor, peak = current.peak.multiplier, True
        return Price(current.cache_hit * factor, current.cache_miss * factor,
                     current.output * factor, peak)

    def entry(self, provider: str, model: str, at: datetime) -> PriceEntry | None:
        """The book entry in force at `at` (the latest that has started)."""
        at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
        current = None
        for entry in self._lookup(provider, model):
            if entry.from_ <= at:
                current = entry
        return current

    def entries(self, provider: str, model: str) -> list[PriceEntry]:
        """Every dated entry for (provider, model), oldest first (for `gateway prices`)."""
        return list(self._lookup(provider, model))

    def books(self) -> list[tuple[str, str]]:
        """The (provider, model) pairs the book lists itself."""
        return sorted(self._entries)

    def _in_window(self, name: str, at: datetime) -> bool:
        window = self._windows[name]
        if not window.contains(at):
            return False
        calendar = window.except_calendar
        if calendar is None:
            return True
        local = at + timedelta(hours=self._offsets[calendar])
        return local.date() not in self._calendars[calendar]

    def _lookup(self, provider: str, model: str) -> list[PriceEntry]:
        seen: set[str] = set()
        names = [provider]
        billed = self._billed_as.get(provider)
        if billed:
            names.insert(0, billed)
        kind = self._kinds.get(provider)
        if kind and kind != provider:
            names.append(kind)
        while names:
            name = names.pop(0)
            if name in seen:
                continue
            seen.add(name)
            if (name, model) in self._entries:
                return self._entries[(name, model)]
            if name in self._same_as:
                names.insert(0, self._same_as[name])
        return []


def merge(base: PriceBookData, overrides: PriceBookData) -> PriceBookData:
    providers = {name: dict(models) for name, models in base.providers.items()}
    for name, models in overrides.providers.items():
        providers.setdefault(name, {}).update(models)
    return PriceBookData(windows={**base.windows, **overrides.windows},
                         calendars={**base.calendars, **overrides.calendars},
                         providers=providers)


def _expand(item: date | str) -> list[date]:
    if isinstance(item, date):
        return [item]
    try:
        first, _, last = item.partition("..")
        start = date.fromisoformat(first.strip())
        end = date.fromisoformat(last.strip()) if last else start
    except ValueError:
        raise ValueError(f"bad calendar day {item!r}: expected YYYY-MM-DD or a "
                         "YYYY-MM-DD..YYYY-MM-DD range") from None
    if end < start:
        raise ValueError(f"bad calendar range {item!r}: the end comes before the start")
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _parse_range(text: str) -> tuple[time, time]:
    try:
        start_s, end_s = text.split("-")
        start = _parse_hhmm(start_s)
        end = _parse_hhmm(end_s)
    except ValueError:
        raise ValueError(f"bad hour range {text!r}: expected HH:MM-HH:MM") from None
    if end != time.max and end <= start:
        raise ValueError(f"bad hour range {text!r}: the end must come after the start")
    return start, end


def _parse_hhmm(text: str) -> time:
    hours, minutes = (int(p) for p in text.strip().split(":"))
    if (hours, minutes) == (24, 0):
        return time.max
    return time(hours, minutes)
