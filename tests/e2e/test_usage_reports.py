"""`/admin/usage` over real HTTP against real Postgres: it reads the hourly rollups (the raw
rows can be pruned and the report stays), groups by api and thinking mode, includes the whole
day a bare `to` date names, exports CSV, and answers bad dates with a 400."""

from __future__ import annotations

import asyncio
import csv
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.metering.prices import PriceBook
from gateway.metering.rows import build_row
from tests.db import pg
from tests.db.pg import query
from tests.e2e.conftest import GatewayFactory
from tests.e2e.test_keys import admin, db, error_of, keyed
from tests.metering.test_rollups import random_event

pg_database = pg.pg_database
pg_url = pg.pg_url
__all__ = ["db"]
PRICES = PriceBook.load()


def seed(url: str, count: int, now: datetime) -> list[dict[str, Any]]:
    """`count` random rows over the last three days (some today), stored like the writer's."""
    rng = random.Random(21)
    rows = [build_row(random_event(rng, i, now.timestamp()), PRICES) for i in range(count)]

    async def go() -> None:
        store = UsageStore(async_url(url, "unused"))
        try:
            await store.insert(rows, PRICES)
        finally:
            await store.close()

    asyncio.run(go())
    return rows


def test_reports_read_rollups_group_by_api_and_thinking_and_export_csv(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    now = datetime.now(UTC)
    rows = seed(db, 300, now)
    gateway = keyed(make_gateway, tmp_path, db)
    today = now.date().isoformat()
    with admin(gateway) as http:
        def report(**params: str) -> list[dict[str, Any]]:
            response = http.get("/admin/usage", params=params)
            assert response.status_code == 200, response.text
            data: list[dict[str, Any]] = response.json()["data"]
            return data

        for group, column in (("api", "api"), ("thinking", "thinking"), ("team", "team")):
            got = {r[group]: r["requests"] for r in report(group_by=group)}
            want: dict[Any, int] = {}
            for row in rows:
                want[row[column]] = want.get(row[column], 0) + 1
            assert got == want, group
        todays = sum(1 for r in rows if r["ts"] >= datetime.combine(
            now.date(), datetime.min.time(), UTC))
        assert todays > 0
        # "to" names a day: that whole day is in (it used to be exclusive: "no usage today")
        assert sum(r["requests"] for r in report(
            group_by="day", **{"from": today, "to": today})) == todays
        failovers = sum(1 for r in rows if "," in str(r["attempts"]))
        assert sum(r["failovers"] for r in report(group_by="model")) == failovers

        exported = http.get("/admin/usage", params={"group_by": "provider", "format": "csv"})
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(exported.text)))
        as_json = report(group_by="provider")
        assert [r["provider"] or None for r in table] == [r["provider"] for r in as_json]
        assert [int(r["requests"]) for r in table] == [r["requests"] for r in as_json]
        assert [float(r["cost_usd"]) for r in table] == [r["cost_usd"] for r in as_json]

        for params in ({"from": "2026-13-01"}, {"to": "yesterday"},
                       {"from": today, "to": (now - timedelta(days=2)).date().isoformat()},
                       {"format": "xml"}, {"group_by": "hour"}):
            response = http.get("/admin/usage", params=params)
            assert response.status_code == 400, (params, response.text)
            assert error_of(response)["type"] == "invalid_request_error"

        before = report(group_by="key")
        query(db, "DELETE FROM usage")  # what retention does to old raw rows
        assert report(group_by="key") == before
