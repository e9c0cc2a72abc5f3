"""Seeding the usage page for tests: traffic through a real gateway (whose metering writer
keeps the rollups), and the raw rows the page's numbers must add up to."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest
from sqlalchemy import select

from gateway.db.engine import async_url, create_engine
from gateway.db.tables import usage


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
