"""The dashboard's usage-database panels: every rawSql, with the Grafana macros it uses
expanded as Grafana's PostgreSQL data source would, runs against a freshly migrated Postgres
seeded with usage rows for two teams and two keys (and their hourly rollups, which the panels
read), and returns their names and spend."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, insert

from gateway.db.engine import async_url, create_engine
from gateway.db.tables import api_keys, teams, usage
from gateway.metering.rollups import rebuild_rollups
from tests.db import pg
from tests.deploy.common import dashboard, sql_queries

pg_database = pg.pg_database  # a scratch database migrated with the gateway's migrations
pg_url = pg.pg_url

FROM, TO = "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"
# Every Grafana macro the panels may use, expanded for the range FROM..TO with 1h buckets.
# Anything else starting with `$` fails the test, so a new macro needs an entry here.
MACROS: list[tuple[str, str]] = [
    (r"\$__timeFilter\(([\w.]+)\)", rf"\1 BETWEEN '{FROM}' AND '{TO}'"),
    (r"\$__timeGroupAlias\(([\w.]+), \$__interval\)", r"date_trunc('hour', \1) AS " '"time"'),
    (r"\$__timeGroup\(([\w.]+), \$__interval\)", r"date_trunc('hour', \1)"),
]

TEAM_NAMES = {"alpha", "beta"}
KEY_NAMES = {"alpha-batch", "beta-chat"}


def expand(sql: str) -> str:
    for pattern, replacement in MACROS:
        sql = re.sub(pattern, replacement, sql)
    leftover = re.findall(r"\$\{?\w+", sql)
    assert not leftover, f"unexpanded Grafana macros or variables {leftover}; add them to MACROS"
    return sql


def _row(n: int, ts: datetime, key_id: str | None, team: str | None, cost: float,
         **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"row{n}", "ts": ts, "request_id": f"req{n}", "key_id": key_id, "team": team,
        "requested_model": "deepseek-chat", "model": "deepseek-v4-flash",
        "provider": "deepseek", "thinking": "off", "stream": False, "status": "ok",
        "prompt_tokens": 100, "cache_hit_tokens": 40, "cache_miss_tokens": 60,
        "completion_tokens": 20, "reasoning_tokens": 0, "cost_usd": cost, "latency_ms": 5.0,
        # one executemany takes its columns from the first row: every row names the same ones
        "api": "openai.chat", "error_type": None,
    }
    row.update(extra)
    return row


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, 15, tzinfo=UTC)


# (team, key name) -> spend inside the range; one row outside it must not count.
ROWS = [
    _row(1, at(2, 10), "k_alpha", "alpha", 0.25),
    _row(2, at(2, 10), "k_alpha", "alpha", 0.50, reasoning_tokens=12, thinking="high"),
    _row(3, at(3, 14), "k_alpha", "alpha", 0.125, status="error", provider="ollama"),
    _row(4, at(2, 11), "k_beta", "beta", 1.0, model="deepseek-v4-pro"),
    _row(5, at(4, 9), "k_beta", "beta", 2.0, model="deepseek-v4-pro", provider="openrouter"),
    _row(6, at(4, 9), "k_gone", "beta", 0.375),      # key row deleted: shows its id
    _row(7, at(5, 8), None, None, 0.0625),           # master key / loopback
    _row(9, at(4, 10), "k_beta", "beta", 0.0, status="refused", provider=None,  # refused
         error_type="rate_limit_exceeded", prompt_tokens=0, cache_hit_tokens=0,
         cache_miss_tokens=0, completion_tokens=0, api="anthropic.messages"),
    _row(8, datetime(2026, 10, 20, tzinfo=UTC), "k_alpha", "alpha", 100.0),  # out of range
]
SPEND_BY_TEAM = {"alpha": 0.875, "beta": 3.375, "(no team)": 0.0625}
SPEND_BY_KEY = {"alpha-batch": 0.875, "beta-chat": 3.0, "k_gone": 0.375,
                "(master/loopback)": 0.0625}


async def _seed(url: str) -> None:
    engine = create_engine(async_url(url, "unused"))
    now = datetime(2026, 10, 1, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(api_keys))
            await conn.execute(delete(teams))
            await conn.execute(insert(teams), [
                {"name": name, "metadata": {}, "created_at": now} for name in TEAM_NAMES])
            await conn.execute(insert(api_keys), [
                {"id": f"k_{team}", "name": name, "key_hash": f"{team:0<64}",
                 "key_prefix": "sk-sy-" + team[:4], "team": team, "metadata": {},
                 "created_at": now}
                for team, name in (("alpha", "alpha-batch"), ("beta", "beta-chat"))])
            await conn.execute(insert(usage), ROWS)
        await rebuild_rollups(engine)  # the panels read the hourly rollups
    finally:
        await engine.dispose()


@pytest.fixture
def seeded(pg_url: str) -> str:
    asyncio.run(_seed(pg_url))
    return pg_url


def _totals(rows: list[dict[str, Any]], label: str, value: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        out[row[label]] = out.get(row[label], 0.0) + float(row[value])
    return out


def test_every_usage_panel_query_runs_against_the_migrated_schema(seeded: str) -> None:
    found = sql_queries(dashboard())
    titles = {title for title, _ in found}
    assert len(found) >= 4
    lo, hi = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    checked: set[str] = set()
    for title, target in found:
        assert re.search(r"\bFROM usage_hourly\b", target["rawSql"]) and not re.search(
            r"\bFROM usage\b", target["rawSql"]), f"{title}: reports read the rollups"
        rows = pg.query(seeded, expand(target["rawSql"]))
        assert rows, f"{title}: no rows"
        if target["format"] == "time_series":
            for row in rows:
                assert lo <= row["time"] < hi, (title, row)
                assert row["time"].minute == 0, (title, row)  # bucketed
                values = [v for k, v in row.items() if k not in ("time", "metric")]
                assert len(values) == 1 and values[0] >= 0, (title, row)
            times = [row["time"] for row in rows]
            assert times == sorted(times), f"{title}: time series must be ordered by time"
            value = next(k for k in rows[0] if k not in ("time", "metric"))
            totals = _totals(rows, "metric", value)
            if "spend_usd" in rows[0] and "team" in title.lower():
                assert totals == pytest.approx(SPEND_BY_TEAM), title
                checked.add("team spend")
            elif "spend_usd" in rows[0] and "key" in title.lower():
                assert totals == pytest.approx(SPEND_BY_KEY), title
                checked.add("key spend")
            else:  # tokens per team and type
                assert value == "tokens", title
                assert totals == {"alpha prompt": 300, "alpha cache_hit": 120,
                                  "alpha completion": 60, "alpha reasoning": 12,
                                  "beta prompt": 300, "beta cache_hit": 120,
                                  "beta completion": 60, "(no team) prompt": 100,
                                  "(no team) cache_hit": 40, "(no team) completion": 20}, title
                checked.add("tokens")
        else:
            assert target["format"] == "table", title
            spend = {(r["team"], r["key"]): r["spend_usd"] for r in rows}
            assert spend == pytest.approx({
                ("alpha", "alpha-batch"): 0.875, ("beta", "beta-chat"): 3.0,
                ("beta", "k_gone"): 0.375, ("(no team)", "(master/loopback)"): 0.0625})
            assert [r["spend_usd"] for r in rows] == sorted(spend.values(), reverse=True)
            by_key = {r["key"]: r for r in rows}
            assert by_key["alpha-batch"]["requests"] == 3
            assert by_key["alpha-batch"]["failed"] == 1
            assert by_key["alpha-batch"]["completion_tokens"] == 60
            assert by_key["alpha-batch"]["refused"] == 0
            assert (by_key["beta-chat"]["requests"], by_key["beta-chat"]["failed"],
                    by_key["beta-chat"]["refused"]) == (3, 0, 1)
            assert all(r["spend_usd"] > 0 for r in rows)
            checked.add("top table")
    assert checked == {"team spend", "key spend", "tokens", "top table"}, titles


def test_the_macro_table_rejects_what_it_does_not_know() -> None:
    assert expand("SELECT 1 FROM usage WHERE $__timeFilter(ts)") == (
        f"SELECT 1 FROM usage WHERE ts BETWEEN '{FROM}' AND '{TO}'")
    with pytest.raises(AssertionError, match="unexpanded"):
        expand("SELECT $__unixEpochGroupAlias(ts, '1h') FROM usage")
    with pytest.raises(AssertionError, match="unexpanded"):
        expand("SELECT 1 FROM usage WHERE team = '${team}'")
