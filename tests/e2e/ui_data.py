"""Seeding the usage page for tests: traffic through a real gateway, rollups, raw rows."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import openai
import pytest
from sqlalchemy import delete, select

from gateway.db.engine import async_url, create_engine
from gateway.db.tables import ROLLUP_COUNTS, ROLLUP_SUMS, usage, usage_hourly, usage_latency_hourly
from gateway.metering.buckets import bucket_of


def raw_rows(database_url: str) -> list[dict[str, Any]]:
    """Every raw usage row (what the page's numbers must add up to)."""

    async def read() -> list[dict[str, Any]]:
        engine = create_engine(async_url(database_url, "unused"))
        try:
            async with engine.connect() as conn:
                return [dict(r) for r in (await conn.execute(select(usage))).mappings()]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def wait_for_rows(database_url: str, count: int, seconds: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        rows = raw_rows(database_url)
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"{len(rows)} of {count} usage rows"
        time.sleep(0.05)


def fill_rollups(database_url: str) -> None:
    """Stand-in for the metering writer's rollups (built from scratch out of the raw rows)."""

    async def fill() -> None:
        engine = create_engine(async_url(database_url, "unused"))
        try:
            async with engine.begin() as conn:
                rows = [dict(r) for r in (await conn.execute(select(usage))).mappings()]
                hourly: dict[tuple[Any, ...], dict[str, float]] = defaultdict(
                    lambda: defaultdict(float))
                latency: dict[tuple[Any, ...], int] = defaultdict(int)
                for row in rows:
                    hour = row["ts"].replace(minute=0, second=0, microsecond=0)
                    key = (hour, row["key_id"] or "", row["team"] or "", row["model"],
                           row["provider"] or "", row["api"], row["thinking"], row["status"])
                    sums = hourly[key]
                    sums["requests"] += 1
                    sums["failovers"] += 1 if "," in row["attempts"] else 0
                    for name in ("prompt_tokens", "cache_hit_tokens", "cache_miss_tokens",
                                 "completion_tokens", "reasoning_tokens", "cost_usd"):
                        sums[name] += row[name]
                    sums["book_cost_usd"] += row["book_cost_usd"] or 0
                    sums["provider_cost_usd"] += row["provider_cost_usd"] or 0
                    sums["latency_ms_sum"] += row["latency_ms"]
                    if row["ttft_ms"] is not None:
                        sums["ttft_count"] += 1
                        sums["ttft_ms_sum"] += row["ttft_ms"]
                    where = (hour, row["provider"] or "", row["model"], row["api"])
                    latency[(*where, "latency", bucket_of(row["latency_ms"]))] += 1
                    if row["ttft_ms"] is not None:
                        latency[(*where, "ttft", bucket_of(row["ttft_ms"]))] += 1
                await conn.execute(delete(usage_hourly))
                await conn.execute(delete(usage_latency_hourly))
                names = ("hour", "key_id", "team", "model", "provider", "api", "thinking",
                         "status")
                if hourly:
                    await conn.execute(usage_hourly.insert(), [
                        {**dict(zip(names, key, strict=True)),
                         **{n: sums.get(n, 0) for n in (*ROLLUP_COUNTS, *ROLLUP_SUMS)}}
                        for key, sums in hourly.items()])
                if latency:
                    await conn.execute(usage_latency_hourly.insert(), [
                        {"hour": k[0], "provider": k[1], "model": k[2], "api": k[3],
                         "metric": k[4], "bucket": k[5], "count": n}
                        for k, n in latency.items()])
        finally:
            await engine.dispose()

    asyncio.run(fill())


FAILOVER_REQUEST_ID = "req-ui-failover-0001"


def seed_traffic(gateway: Any, upstreams: Any, master: str) -> dict[str, Any]:
    """Teams, keys (one never used) and a mix of calls that lands on three providers: plain
    calls on the first provider, failovers to the second and third, a stream, an error.
    The gateway's providers must be in the order ollama, deepseek, openrouter. Returns the
    made keys and the number of calls."""
    import httpx

    from tests.upstream.common import Faults

    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {master}"},
                         timeout=20)
    admin.post("/admin/teams", json={"name": "research", "budget_usd": 0.5,
                                     "budget_period": "month", "rpm": 600}).raise_for_status()
    admin.post("/admin/teams", json={"name": "support"}).raise_for_status()
    keys = {}
    for name, team, extra in (("notebook", "research", {"budget_usd": 0.01,
                                                        "budget_period": "day", "tpm": 90000}),
                              ("idle-script", "research", {}),
                              ("helpdesk-bot", "support", {})):
        made = admin.post("/admin/keys", json={"name": name, "team": team, **extra})
        made.raise_for_status()
        keys[name] = made.json()
    prompt = [{"role": "user", "content": "summarise the quarterly report in five bullets"}]
    notebook = gateway.openai(api_key=keys["notebook"]["key"])
    helpdesk = gateway.openai(api_key=keys["helpdesk-bot"]["key"])
    calls = 0
    for _ in range(3):  # ollama serves
        notebook.chat.completions.create(model="deepseek-chat", messages=prompt)
        calls += 1
    helpdesk.chat.completions.create(model="deepseek-v4-pro", messages=prompt)
    stream = helpdesk.chat.completions.create(model="deepseek-chat", messages=prompt,
                                              stream=True)
    for _ in stream:
        pass
    calls += 2
    upstreams.ollama.faults = Faults(status=503)  # failover to deepseek
    notebook.chat.completions.create(model="deepseek-chat", messages=prompt,
                                     extra_headers={"x-request-id": FAILOVER_REQUEST_ID})
    helpdesk.chat.completions.create(model="deepseek-chat", messages=prompt)
    calls += 2
    upstreams.deepseek.faults = Faults(status=503)  # failover to openrouter
    for _ in range(2):
        helpdesk.chat.completions.create(model="deepseek-chat", messages=prompt)
        calls += 1
    upstreams.openrouter.faults = Faults(status=503)  # everything down: an error
    with pytest.raises(openai.APIStatusError):
        notebook.chat.completions.create(model="deepseek-chat", messages=prompt)
    calls += 1
    for sim in (upstreams.ollama, upstreams.deepseek, upstreams.openrouter):
        sim.faults = Faults()
    return {"keys": keys, "calls": calls}
