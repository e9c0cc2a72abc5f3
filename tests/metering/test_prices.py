"""The shipped price book (PROVIDERS.md), overrides, and the cost formula."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.config import ConfigError, load_config
from gateway.metering.cost import PricingSink, cost_usd, split_prompt
from gateway.metering.prices import Price, PriceBook, PriceBookData
from gateway.metering.rows import build_row
from gateway.usage import FanOutSink, Usage, UsageEvent

BOOK = PriceBook.load(kinds={"ollama-backup": "ollama"})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_launch_prices() -> None:
    # Issue 12: the old book kept launch list prices for Pro forever and had no cache cut.
    assert BOOK.price("deepseek", "deepseek-v4-flash", at("2026-04-25T12:00")) == Price(
        0.028, 0.14, 0.28)
    assert BOOK.price("deepseek", "deepseek-v4-flash", at("2026-05-01T12:00")) == Price(
        0.0028, 0.14, 0.28)
    assert BOOK.price("deepseek", "deepseek-v4-pro", at("2026-12-01T02:00")) == Price(
        0.022 * 2, 0.66 * 2, 1.98 * 2, True)
    assert BOOK.price("deepseek", "deepseek-v4-flash", at("2026-04-23T23:59")) is None


@pytest.mark.parametrize(
    ("when", "peak"),
    [
        ("2026-09-14T01:00", True),   # Monday, first window opens
        ("2026-09-14T03:59", True),
        ("2026-09-14T04:00", False),  # between the windows
        ("2026-09-14T06:30", True),
        ("2026-09-14T10:00", False),  # second window closed
        ("2026-09-18T09:00", True),   # Friday
        ("2026-09-19T02:00", False),  # Saturday
        ("2026-09-13T07:00", False),  # Sunday
    ],
)
def test_flash_from_2026_09_10_doubles_at_peak(when: str, peak: bool) -> None:
    price = BOOK.price("deepseek", "deepseek-v4-flash", at(when))
    factor = 2 if peak else 1
    assert price == Price(0.003 * factor, 0.15 * factor, 0.60 * factor, peak)


def test_a_price_looked_up_by_unix_time_follows_the_minutes_across_a_peak_edge() -> None:
    """`price_at` (what each usage row asks) memoizes per minute: back and forth across the
    end of a peak window (2026-09-14 04:00 UTC, see above) it answers like a fresh book."""
    edge = at("2026-09-14T04:00").timestamp()
    book = PriceBook.load()
    for moment in (edge - 0.5, edge + 0.5, edge - 61, edge + 59.9, edge - 0.001, edge):
        fresh = PriceBook.load().price_at("deepseek", "deepseek-v4-flash", moment)
        assert book.price_at("deepseek", "deepseek-v4-flash", moment) == fresh
        assert fresh is not None and fresh.peak == (moment < edge)


def test_openrouter_has_its_own_prices_and_ollama_is_free() -> None:
    when = at("2026-09-14T02:00")  # DeepSeek's peak: OpenRouter has none
    assert BOOK.price("openrouter", "deepseek-v4-flash", when) == Price(0.003, 0.15, 0.60)
    assert BOOK.price("deepseek", "deepseek-v4-flash", when) == Price(0.006, 0.30, 1.20, True)
    assert BOOK.price("ollama", "deepseek-v4-flash", when) == Price(0, 0, 0)
    assert BOOK.price("ollama-backup", "deepseek-v4-flash", when) == Price(0, 0, 0)
    assert BOOK.price("nobody", "deepseek-v4-flash", when) is None


def test_overrides_replace_a_model_and_keep_the_rest() -> None:
    overrides = PriceBookData.model_validate({"providers": {"ollama": {"deepseek-v4-flash": [
        {"from": "2026-01-01", "cache_hit": 0, "cache_miss": 0.1, "output": 0.2}]}}})
    book = PriceBook.load(overrides)
    when = at("2026-06-01T00:00")
    assert book.price("ollama", "deepseek-v4-flash", when) == Price(0, 0.1, 0.2)
    assert book.price("ollama", "deepseek-v4-pro", when) == Price(0, 0, 0)
    assert book.price("deepseek", "deepseek-v4-flash", when) == Price(0.0028, 0.14, 0.28)


def test_config_refuses_unknown_windows_and_bad_hours(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "g.yaml"
    path.write_text("prices:\n  providers:\n    deepseek:\n      deepseek-v4-flash:\n"
                    "        - {from: 2026-01-01, cache_hit: 1, cache_miss: 1, output: 1,"
                    " peak: {windows: nope, multiplier: 2}}\n")
    with pytest.raises(ConfigError, match="unknown peak windows"):
        load_config(path, env={})
    path.write_text('prices:\n  windows:\n    w: {hours_utc: ["10:00-09:00"]}\n')
    with pytest.raises(ConfigError, match="bad hour range"):
        load_config(path, env={})


def test_cost_uses_the_split_and_counts_unsplit_prompts_as_misses() -> None:
    price = Price(1.0, 2.0, 4.0)
    split = Usage(prompt_tokens=100, completion_tokens=10, cache_hit_tokens=60,
                  cache_miss_tokens=40, reasoning_tokens=5)
    assert split_prompt(split) == (60, 40)
    assert cost_usd(split, price) == pytest.approx((60 * 1 + 40 * 2 + 10 * 4) / 1e6)
    bare = Usage(prompt_tokens=100, completion_tokens=10)
    assert split_prompt(bare) == (0, 100)
    assert cost_usd(bare, price) == pytest.approx((100 * 2 + 10 * 4) / 1e6)


def test_a_row_is_priced_at_its_own_time_and_clipped() -> None:
    event = UsageEvent(
        request_id="r" * 500, requested_model="deepseek-chat", model="deepseek-v4-flash",
        thinking="off", stream=True, status="ok", provider="deepseek",
        upstream_model="deepseek-v4-flash", client_user="bad\x00user",
        usage=Usage(prompt_tokens=10, completion_tokens=2, cache_hit_tokens=4,
                    cache_miss_tokens=6), attempts=[("ollama", "503"), ("deepseek", "200")],
        started_at=at("2026-09-14T02:00").timestamp(),
    )
    row = build_row(event, BOOK)
    assert row["peak"] is True
    assert row["cost_usd"] == pytest.approx((4 * 0.006 + 6 * 0.30 + 2 * 1.20) / 1e6)
    assert len(row["request_id"]) == 128 and row["client_user"] == "baduser"
    assert row["attempts"] == "ollama:503,deepseek:200"
    assert row["key_id"] is None and row["team"] is None
    assert row["book_cost_usd"] == pytest.approx(row["cost_usd"])
    assert build_row(event, BOOK)["id"] != row["id"]


class _CountingBook(PriceBook):
    """BOOK's prices, counting the look-ups."""

    def __init__(self) -> None:
        self.__dict__.update(BOOK.__dict__)
        self._memo = {}
        self._memo_minute = -1
        self.looked_up = 0

    def price_at(self, provider: str, model: str, epoch: float) -> Price | None:
        self.looked_up += 1  # `price` asks this too
        return super().price_at(provider, model, epoch)


@pytest.mark.parametrize("when", ["2026-09-14T02:00", "2026-09-14T02:00:59.999",
                                  "2026-09-14T05:00", "2026-09-10T03:59:30"])
@pytest.mark.parametrize("usage", [Usage(prompt_tokens=10, completion_tokens=2),
                                   Usage(prompt_tokens=10, completion_tokens=2,
                                         provider_cost_usd=0.5), None])
def test_a_priced_event_makes_the_row_an_unpriced_one_makes_without_a_second_look_up(
    when: str, usage: Usage | None
) -> None:
    """PricingSink keeps the price's peak on the event, so build_row need not look the price
    up again; the row is the one build_row makes from the event unpriced."""
    def event() -> UsageEvent:
        return UsageEvent(request_id="r", requested_model="deepseek-chat",
                          model="deepseek-v4-flash", thinking="off", stream=True,
                          status="ok", provider="deepseek", usage=usage,
                          started_at=at(when).timestamp())

    book = _CountingBook()
    priced = event()
    PricingSink(book, FanOutSink([])).record(priced)
    looked_up = book.looked_up
    row = build_row(priced, book)
    assert book.looked_up == looked_up + (usage is None)  # no usage: nothing was priced
    unpriced = build_row(event(), BOOK)
    for name in ("peak", "book_cost_usd", "prompt_tokens", "provider_cost_usd"):
        assert row[name] == unpriced[name], name
    if usage is None or usage.provider_cost_usd is None:
        assert row["cost_usd"] == unpriced["cost_usd"]
    assert row["peak"] is (when != "2026-09-14T05:00")  # 05:00 is off-peak


# ---- issue 12: cost against figures computed by hand from PROVIDERS.md ----------------------

HIT, MISS, OUT = 1_000, 2_000, 500
USAGE = Usage(prompt_tokens=HIT + MISS, completion_tokens=OUT, cache_hit_tokens=HIT,
              cache_miss_tokens=MISS)


def by_hand(hit: float, miss: float, out: float) -> float:
    return (HIT * hit + MISS * miss + OUT * out) / 1_000_000


def book_cost(provider: str, model: str, when: str, book: PriceBook = BOOK) -> float:
    price = book.price(provider, model, at(when))
    assert price is not None
    return cost_usd(USAGE, price)


@pytest.mark.parametrize(
    ("model", "when", "expected"),
    [
        # launch week, before the 2026-04-26 12:15 cache cut
        ("deepseek-v4-flash", "2026-04-25T12:00", by_hand(0.028, 0.14, 0.28)),
        ("deepseek-v4-flash", "2026-04-26T12:15", by_hand(0.0028, 0.14, 0.28)),
        # after 2026-08-16 16:00: Monday 02:00 UTC is peak (double), 05:00 off-peak
        ("deepseek-v4-flash", "2026-08-17T02:00", by_hand(0.014, 0.44, 1.32)),
        ("deepseek-v4-flash", "2026-08-17T05:00", by_hand(0.007, 0.22, 0.66)),
        ("deepseek-v4-flash", "2026-08-16T15:59", by_hand(0.0028, 0.14, 0.28)),
        # a Chinese public holiday (National Day, a Monday) is off-peak in a peak hour
        ("deepseek-v4-flash", "2026-10-05T02:00", by_hand(0.003, 0.15, 0.60)),
        ("deepseek-v4-flash", "2026-10-12T02:00", by_hand(0.006, 0.30, 1.20)),  # a week on
        # V4.1-Flash from 2026-09-10 04:00 UTC (not 00:00): 03:59 is the old price at peak
        ("deepseek-v4-flash", "2026-09-10T03:59", by_hand(0.014, 0.44, 1.32)),
        ("deepseek-v4-flash", "2026-09-10T04:00", by_hand(0.003, 0.15, 0.60)),
        # Pro today (Tuesday 2026-12-01): off-peak at noon, double at 02:00
        ("deepseek-v4-pro", "2026-12-01T12:00", by_hand(0.022, 0.66, 1.98)),
        ("deepseek-v4-pro", "2026-12-01T02:00", by_hand(0.044, 1.32, 3.96)),
    ],
)
def test_deepseek_cost_at_the_dates_of_the_price_changes(
    model: str, when: str, expected: float
) -> None:
    assert book_cost("deepseek", model, when) == pytest.approx(expected, rel=1e-12)


def test_an_ollama_per_token_account_is_priced_and_a_subscription_is_free(
    tmp_path: object
) -> None:
    from pathlib import Path

    from gateway.metering.setup import price_book

    path = Path(str(tmp_path)) / "g.yaml"
    path.write_text("providers:\n  ollama:\n    billing: per_token\n")
    book = price_book(load_config(path, env={}))
    assert book_cost("ollama", "deepseek-v4-flash", "2026-12-01T02:00", book) == pytest.approx(
        by_hand(0.014, 0.44, 1.32), rel=1e-12)
    assert book_cost("ollama", "deepseek-v4-flash", "2026-12-01T02:00") == 0.0
    assert book.price("ollama", "deepseek-v4-flash", at("2026-08-30T00:00")) is None


def test_openrouters_reported_cost_is_recorded_with_the_books_beside_it() -> None:
    from gateway.metering.cost import PricingSink

    seen: list[UsageEvent] = []

    class Collect:
        def record(self, event: UsageEvent) -> None:
            seen.append(event)

    reported = Usage(prompt_tokens=HIT + MISS, completion_tokens=OUT, cache_hit_tokens=HIT,
                     provider_cost_usd=0.00123)
    when = at("2026-12-01T02:00").timestamp()
    sink = PricingSink(BOOK, Collect())
    for provider, usage in (("openrouter", reported), ("deepseek", USAGE)):
        sink.record(UsageEvent(request_id="r", requested_model="m", model="deepseek-v4-flash",
                               thinking="high", stream=False, status="ok", provider=provider,
                               usage=usage, started_at=when))
    openrouter, deepseek = seen
    assert openrouter.cost_usd == 0.00123
    assert openrouter.book_cost_usd == pytest.approx(by_hand(0.003, 0.15, 0.60), rel=1e-12)
    assert deepseek.cost_usd == deepseek.book_cost_usd == pytest.approx(
        by_hand(0.006, 0.30, 1.20), rel=1e-12)
    row = build_row(openrouter, BOOK)
    assert row["cost_usd"] == 0.00123 and row["provider_cost_usd"] == 0.00123
    assert row["book_cost_usd"] == pytest.approx(by_hand(0.003, 0.15, 0.60), rel=1e-12)


def test_every_shipped_entry_has_a_source_and_the_calendar_can_be_overridden() -> None:
    for provider, model in BOOK.books():
        for entry in BOOK.entries(provider, model):
            assert entry.source and entry.source.startswith("https://"), (provider, model)
    overrides = PriceBookData.model_validate(
        {"calendars": {"cn-public-holidays": {"utc_offset_hours": 8, "days": ["2026-10-12"]}}})
    book = PriceBook.load(overrides)
    assert book.price("deepseek", "deepseek-v4-flash", at("2026-10-12T02:00")).peak is False  # type: ignore[union-attr]
    assert book.price("deepseek", "deepseek-v4-flash", at("2026-10-05T02:00")).peak is True  # type: ignore[union-attr]
