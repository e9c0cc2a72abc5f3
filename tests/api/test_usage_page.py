"""The usage page's pure parts: periods, the chart's scale, CSV, folding rows into tables."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.api.usage_page import views
from gateway.api.usage_page.chart import nice_step, spend_chart
from gateway.api.usage_page.csv_export import to_csv
from gateway.api.usage_page.format import money, tick_money
from gateway.api.usage_page.load import cursor
from gateway.api.usage_page.period import Period, parse_period

TODAY = date(2026, 12, 7)


@pytest.mark.parametrize(("params", "first", "last"), [
    ({"range": "today"}, TODAY, TODAY),
    ({"range": "7d"}, date(2026, 12, 1), TODAY),
    ({"range": "30d"}, date(2026, 11, 8), TODAY),
    ({"range": "month"}, date(2026, 12, 1), TODAY),
    ({}, date(2026, 11, 8), TODAY),
    ({"from": "2026-12-07", "to": "2026-12-07"}, TODAY, TODAY),
    ({"from": "2026-01-01", "to": "2026-01-31"}, date(2026, 1, 1), date(2026, 1, 31)),
])
def test_periods_include_both_days(params: dict[str, str], first: date, last: date) -> None:
    period, error = parse_period(params, TODAY)
    assert error is None and (period.first, period.last) == (first, last)
    assert period.start == datetime(first.year, first.month, first.day, tzinfo=UTC)
    assert period.end == datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(
        days=1)  # the SQL range ends at the midnight after the last day


@pytest.mark.parametrize(("params", "message"), [
    ({"from": "yesterday"}, "from: expected a date"),
    ({"to": "2026-13-01"}, "to: expected a date"),
    ({"from": "2026-12-08", "to": "2026-12-07"}, "is after to"),
    ({"from": "1900-01-01", "to": "2026-12-07"}, "between 1970"),
    ({"from": "2000-01-01", "to": "2026-12-07"}, "at most"),
    ({"range": "year"}, "range: expected one of"),
])
def test_a_bad_period_is_a_message_and_the_default(params: dict[str, str],
                                                   message: str) -> None:
    period, error = parse_period(params, TODAY)
    assert error is not None and message in error
    assert (period.first, period.last) == (date(2026, 11, 8), TODAY)


def test_short_periods_are_charted_per_hour() -> None:
    assert Period(TODAY, TODAY).hourly and len(views.points(Period(TODAY, TODAY))) == 24
    week = Period(date(2026, 12, 1), TODAY)
    assert not week.hourly and len(views.points(week)) == 7


@pytest.mark.parametrize(("top", "step"), [(0.0, 1.0), (1.0, 0.25), (7.3, 2.0), (90, 25),
                                           (0.00042, 0.0002), (1234, 500)])
def test_ticks_are_round(top: float, step: float) -> None:
    assert nice_step(top) == pytest.approx(step)
    assert nice_step(top) * 4 >= top


def test_tick_labels_have_no_exponent() -> None:
    assert tick_money(0.000075, 0.000025) == "$0.000075"
    assert tick_money(1500, 500) == "$1,500" and tick_money(0, 1) == "$0"


def test_money_keeps_digits_for_fractions_of_a_cent_and_none_for_nothing() -> None:
    assert money(0) == "$0"
    assert money(0.0000123) == "$0.000012"
    assert money(0.5) == "$0.5000" and money(1234.5) == "$1,234.50"


def traffic_row(bucket: date, provider: str, model: str, cost: float, requests: int = 1,
                status: str = "ok") -> dict[str, object]:
    row: dict[str, object] = {name: 0 for name in views.SUMS}
    row.update(bucket=bucket, provider=provider, model=model, api="openai.chat",
               thinking="off", status=status, requests=requests, cost_usd=cost)
    return row


def test_the_chart_stacks_each_series_and_labels_it() -> None:
    period = Period(date(2026, 12, 5), TODAY)
    rows = [traffic_row(date(2026, 12, 5), "deepseek", "flash", 0.5),
            traffic_row(date(2026, 12, 7), "deepseek", "flash", 0.25, 3),
            traffic_row(date(2026, 12, 7), "openrouter", "flash", 1.0),
            traffic_row(date(2026, 12, 7), "ollama", "flash", 0.0, 9)]
    data = views.series(rows, "provider", period)
    assert data.values == {"openrouter": [0.0, 0.0, 1.0], "deepseek": [0.5, 0.0, 0.25]}
    svg = spend_chart(data, "provider", hourly=False)
    assert svg.count('class="seg"') == 3 and svg.count('class="legend"') == 2
    assert "2026-12-07 · deepseek: $0.2500 (3 requests)" in svg  # the hover value
    assert ">12-05<" in svg and ">$1.5<" in svg  # x labels, the top y tick (1.25 rounded up)


def test_the_provider_table_reads_percentiles_and_flags_cost_gaps() -> None:
    rows = [traffic_row(TODAY, "openrouter", "flash", 1.0, 4),
            traffic_row(TODAY, "openrouter", "flash", 0.0, 1, status="error")]
    rows[0].update(failovers=2, provider_cost_usd=1.0, book_cost_usd=0.8)
    latency = [{"provider": "openrouter", "metric": "latency", "bucket": 20, "count": 4},
               {"provider": "openrouter", "metric": "latency", "bucket": 30, "count": 1}]
    (row,) = views.providers(rows, latency).rows
    assert (row["requests"], row["errors"], row["failovers"]) == (5, 1, 2)
    assert row["error_rate"] == pytest.approx(0.2)
    assert row["latency_p50"] == pytest.approx(1.25 ** 20)
    assert row["latency_p95"] == pytest.approx(1.25 ** 30)
    assert row["cost_gap_usd"] == pytest.approx(0.2)


def test_keys_never_used_are_listed() -> None:
    key_rows = [{"id": "k1", "name": "idle", "team": "t", "rpm": 5, "tpm": None,
                 "budget_usd": None, "budget_period": None, "revoked_at": None,
                 "role": "user", "last_used": None}]
    (row,) = views.keys([], key_rows, []).rows
    assert (row["key"], row["requests"], row["state"]) == ("idle (k1)", 0, "never used")


def test_csv_keeps_raw_values_and_defuses_formulas() -> None:
    table = views.Table("keys", "Keys", [views.Column("key", "Key"),
                                         views.Column("cost_usd", "Spend", "usd"),
                                         views.Column("budget_used", "Budget", "budget")],
                        [{"key": "=cmd|' /C calc'!A0", "cost_usd": -0.000123456789,
                          "budget_usd": 5.0, "budget_period": "day", "budget_spent": 1.0,
                          "budget_used": 0.2}])
    (row,) = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert row == {"key": "'=cmd|' /C calc'!A0", "cost_usd": "-0.000123456789",
                   "budget_usd": "5", "budget_period": "day", "budget_spent": "1",
                   "budget_used": "0.2"}


def test_a_log_cursor_round_trips_and_rejects_junk() -> None:
    ts = datetime(2026, 12, 7, 3, 4, 5, 678, tzinfo=UTC)
    assert cursor(f"{ts.isoformat()}_abc123") == (ts, "abc123")
    for junk in ("nonsense", "2026-12-07_", "x_abc", f"{ts.isoformat()}_a;b"):
        with pytest.raises(ValueError):
            cursor(junk)
