"""The shipped price book (PROVIDERS.md), overrides, and the cost formula."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.config import ConfigError, load_config
from gateway.metering.cost import cost_usd, split_prompt
from gateway.metering.prices import Price, PriceBook, PriceBookData
from gateway.metering.rows import build_row
from gateway.usage import Usage, UsageEvent

BOOK = PriceBook.load(kinds={"ollama-backup": "ollama"})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_launch_prices() -> None:
    assert BOOK.price("deepseek", "deepseek-v4-flash", at("2026-05-01T12:00")) == Price(
        0.028, 0.14, 0.28)
    assert BOOK.price("deepseek", "deepseek-v4-pro", at("2026-12-01T02:00")) == Price(
        0.145, 1.74, 3.48)
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


def test_openrouter_borrows_deepseek_and_ollama_is_free() -> None:
    when = at("2026-06-01T00:00")
    assert BOOK.price("openrouter", "deepseek-v4-pro", when) == BOOK.price(
        "deepseek", "deepseek-v4-pro", when)
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
    assert book.price("deepseek", "deepseek-v4-flash", when) == Price(0.028, 0.14, 0.28)


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
    assert build_row(event, BOOK)["id"] != row["id"]
