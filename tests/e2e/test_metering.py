"""Metering end to end: real gateways over real HTTP, rows in a real Postgres (and SQLite).

Prices are overridden with round numbers from 2020 so every expected cost is plain arithmetic;
the shipped book's dates and peak hours are checked in tests/metering/test_prices.py."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.metering.writer import MeteringWriter
from gateway.usage import Usage, UsageEvent
from tests.db import pg
from tests.db.pg import admin, query
from tests.e2e.conftest import GatewayFactory, RunningGateway, Upstreams

PRICES = """
prices:
  windows:
    always: {hours_utc: ["00:00-24:00"]}
  providers:
    deepseek:
      deepseek-v4-flash: [{from: 2020-01-01, cache_hit: 1, cache_miss: 2, output: 4%s}]
    openrouter:
      deepseek-v4-flash: [{from: 2020-01-01, cache_hit: 1, cache_miss: 2, output: 4}]
    ollama:
      deepseek-v4-flash: [{from: 2020-01-01, cache_hit: 0, cache_miss: 0.5, output: 1}]
"""
PEAK = ", peak: {windows: always, multiplier: 2}"

CONVERSATION = [
    {"role": "system", "content": "you are a terse helpful assistant for metering tests"},
    {"role": "user", "content": "hello there"},
]

pg_database = pg.pg_database  # the session's scratch Postgres database
pg_url = pg.pg_url


def metered(make_gateway: GatewayFactory, tmp_path: Path, url: str | None,
            providers: list[str], extra: str = "", peak: bool = False,
            env: dict[str, str] | None = None) -> RunningGateway:
    yaml = (f"metering: {{flush_interval: 0.02, retry_max: 0.2, insert_timeout: 2,"
            f" spool_path: {tmp_path / 'spool'}{extra}}}\n" + PRICES % (PEAK if peak else ""))
    environment = dict(env or {})
    if url:
        environment["DATABASE_URL"] = url
    return make_gateway(providers, yaml=yaml, env=environment)


def writer_of(gateway: RunningGateway) -> MeteringWriter:
    writer: MeteringWriter = gateway.server.app.state.metering  # type: ignore[attr-defined]
    assert writer is not None
    return writer


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def rows_by_request(url: str, expected: int) -> dict[str, dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def enough() -> bool:
        nonlocal rows
        rows = query(url, "SELECT * FROM usage")
        return len(rows) >= expected

    wait_for(enough)
    assert len(rows) == expected
    return {r["request_id"]: r for r in rows}


def chat(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("provider", ["deepseek", "openrouter", "ollama"])
def test_each_usage_dialect_becomes_a_priced_row(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path, pg_url: str,
    provider: str,
) -> None:
    gateway = metered(make_gateway, tmp_path, pg_url, [provider])
    body = {"model": "deepseek-chat", "messages": CONVERSATION, "user": "alice"}
    with gateway.http() as http:
        ids = [chat(http, body).headers["x-request-id"] for _ in range(2)]  # 2nd: cache hit
    rows = rows_by_request(pg_url, 2)
    events = {e.request_id: e for e in gateway.sink.events}
    for request_id in ids:
        row, usage = rows[request_id], events[request_id].usage
        assert usage is not None
        assert (row["provider"], row["model"], row["requested_model"]) == (
            provider, "deepseek-v4-flash", "deepseek-chat")
        assert (row["status"], row["stream"], row["client_user"]) == ("ok", False, "alice")
        assert row["attempts"] == f"{provider}:200" and row["thinking"] == "off"
        assert row["prompt_tokens"] == usage.prompt_tokens > 0
        assert row["completion_tokens"] == usage.completion_tokens > 0
        hit, miss = row["cache_hit_tokens"], row["cache_miss_tokens"]
        assert hit + miss == usage.prompt_tokens
        if provider == "ollama":  # no split reported: every prompt token is a miss
            assert hit == 0
            expected = (miss * 0.5 + row["completion_tokens"] * 1) / 1e6
            assert row["provider_cost_usd"] is None
        else:
            assert hit == (usage.cache_hit_tokens or 0)
            expected = (hit * 1 + miss * 2 + row["completion_tokens"] * 4) / 1e6
        assert row["book_cost_usd"] == pytest.approx(expected)
        if provider == "openrouter":  # what OpenRouter says it billed is the cost (issue 12)
            assert row["cost_usd"] == pytest.approx(usage.provider_cost_usd)
        else:
            assert row["cost_usd"] == pytest.approx(expected)
        assert row["latency_ms"] > 0 and row["ttft_ms"] is not None
        assert upstreams[provider].key not in str(row)
    second = rows[ids[1]]
    if provider != "ollama":
        assert second["cache_hit_tokens"] > 0
    if provider == "openrouter":  # OpenRouter's own figure is kept beside ours
        assert second["provider_cost_usd"] == pytest.approx(
            events[ids[1]].usage.provider_cost_usd)  # type: ignore[union-attr]


def test_peak_hours_double_the_price(
    make_gateway: GatewayFactory, tmp_path: Path, pg_url: str
) -> None:
    gateway = metered(make_gateway, tmp_path, pg_url, ["deepseek"], peak=True)
    with gateway.http() as http:
        request_id = chat(http, {"model": "deepseek-v4-flash", "messages": CONVERSATION}
                          ).headers["x-request-id"]
    row = rows_by_request(pg_url, 1)[request_id]
    assert row["peak"] is True and row["thinking"] == "high"  # the mode (issue 12)
    assert row["reasoning_tokens"] > 0
    expected = 2 * (row["cache_hit_tokens"] * 1 + row["cache_miss_tokens"] * 2
                    + row["completion_tokens"] * 4) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)


def test_a_stream_without_include_usage_is_metered_and_shows_no_usage(
    make_gateway: GatewayFactory, tmp_path: Path, pg_url: str
) -> None:
    gateway = metered(make_gateway, tmp_path, pg_url, ["deepseek"])
    body = {"model": "deepseek-v4-flash", "stream": True, "messages": CONVERSATION}
    with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        request_id = r.headers["x-request-id"]
        payloads = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert all(c["choices"] and not c.get("usage") for c in chunks)
    row = rows_by_request(pg_url, 1)[request_id]
    assert row["stream"] is True and row["status"] == "ok" and row["estimated"] is False
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["cost_usd"] > 0


def test_a_database_outage_loses_no_row_and_fails_no_request(
    make_gateway: GatewayFactory, tmp_path: Path, pg_database: tuple[str, str], pg_url: str
) -> None:
    name = pg_database[0]
    gateway = metered(make_gateway, tmp_path, pg_url, ["deepseek"])
    writer = writer_of(gateway)
    total, done = 240, []
    lock = threading.Lock()
    outage, restored = threading.Event(), threading.Event()

    def client(worker: int) -> None:
        with gateway.http() as http:
            for i in range(total // 8):
                body = {"model": "deepseek-chat",
                        "messages": [{"role": "user", "content": f"w{worker} r{i}"}]}
                ids = chat(http, body).headers["x-request-id"]
                with lock:
                    done.append(ids)
                    if len(done) == total // 3:
                        outage.set()
                if outage.is_set() and not restored.is_set():
                    time.sleep(0.005)  # keep the run going through the outage

    def cut_and_restore() -> None:
        outage.wait(20)
        try:
            admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  f"WHERE datname = '{name}'")
            wait_for(lambda: writer.spool.spooled_total > 0)
            time.sleep(0.3)
        finally:
            admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            restored.set()

    with ThreadPoolExecutor(9) as pool:
        chaos = pool.submit(cut_and_restore)
        for future in [pool.submit(client, w) for w in range(8)]:
            future.result()
        chaos.result()
    assert len(done) == total and len(set(done)) == total
    rows = rows_by_request(pg_url, total)
    wait_for(lambda: writer.spooled_rows == 0 and writer.queue_depth == 0)
    assert set(rows) == set(done)
    assert writer.spool.spooled_total > 0  # the outage really sent rows to the spool
    [count] = query(pg_url, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM usage")
    assert count["n"] == count["d"] == total


def test_sqlite_file_when_no_database_url(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    path = tmp_path / "db" / "usage.db"
    gateway = metered(make_gateway, tmp_path, None, ["ollama"],
                      extra=f", enabled: true, sqlite_path: {path}")
    with gateway.http() as http:
        ids = {chat(http, {"model": "deepseek-v4-flash", "messages": CONVERSATION}
                    ).headers["x-request-id"] for _ in range(3)}

    def stored() -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as db:
            return db.execute(
                "SELECT request_id, provider, prompt_tokens, cache_miss_tokens, cost_usd "
                "FROM usage").fetchall()

    wait_for(lambda: len(stored()) == 3)
    rows = stored()
    assert {r[0] for r in rows} == ids
    assert all(r[1] == "ollama" and r[2] == r[3] > 0 and r[4] > 0 for r in rows)


def test_admin_usage_needs_the_master_key_and_groups(
    make_gateway: GatewayFactory, tmp_path: Path, pg_url: str
) -> None:
    gateway = metered(make_gateway, tmp_path, pg_url, ["deepseek", "ollama"],
                      env={"GATEWAY_MASTER_KEY": "sk-master"})
    auth = {"Authorization": "Bearer sk-master"}
    with gateway.http() as http:
        for pin in ("deepseek", "ollama", "ollama"):
            r = http.post("/v1/chat/completions", headers={**auth, "x-gateway-provider": pin},
                          json={"model": "deepseek-v4-flash", "messages": CONVERSATION})
            assert r.status_code == 200
        rows_by_request(pg_url, 3)
        assert http.get("/admin/usage").status_code == 401
        assert http.get("/admin/usage?group_by=nope", headers=auth).status_code == 400
        report = http.get("/admin/usage?group_by=provider", headers=auth).json()
        by = {row["provider"]: row for row in report["data"]}
        assert by["deepseek"]["requests"] == 1 and by["ollama"]["requests"] == 2
        assert by["ollama"]["cache_hit_tokens"] == 0 and by["deepseek"]["cost_usd"] > 0
        [day] = http.get("/admin/usage?group_by=day", headers=auth).json()["data"]
        assert day["requests"] == 3 and len(day["day"]) == 10
        empty = http.get("/admin/usage?group_by=model&from=2020-01-01&to=2020-01-02",
                         headers=auth).json()
        assert empty["data"] == []


def _other_api_and_refusals(writer: MeteringWriter) -> list[UsageEvent]:
    """What the pipeline records for calls through the Anthropic Messages API and for calls it
    refuses, handed to the gateway's own metering writer."""
    events = [
        UsageEvent(request_id="anthropic-ok", requested_model="deepseek-chat",
                   model="deepseek-v4-flash", thinking="off", stream=True, status="ok",
                   provider="deepseek", upstream_model="deepseek-v4-flash",
                   attempts=[("deepseek", "200")], api="anthropic.messages",
                   usage=Usage(prompt_tokens=100, cache_hit_tokens=0, cache_miss_tokens=100,
                               completion_tokens=10), latency_s=0.2, ttft_s=0.05),
        UsageEvent(request_id="refused-early", requested_model="", model="", thinking="off",
                   stream=False, status="refused", error_type="invalid_api_key",
                   api="anthropic.messages", latency_s=0.001),
        UsageEvent(request_id="refused-budget", requested_model="deepseek-chat",
                   model="deepseek-v4-flash", thinking="off", stream=False, status="refused",
                   error_type="insufficient_quota", key_id="k_1", team="alpha",
                   latency_s=0.001),
    ]
    for item in events:
        writer.record(item)
    return events


def _check_refusal_rows(rows: dict[str, dict[str, Any]]) -> None:
    ok, early, budget = rows["anthropic-ok"], rows["refused-early"], rows["refused-budget"]
    assert (ok["api"], ok["status"], ok["provider"]) == ("anthropic.messages", "ok", "deepseek")
    assert ok["cost_usd"] == pytest.approx((100 * 2 + 10 * 4) / 1e6)  # priced like any call
    assert (early["api"], early["status"], early["error_type"]) == (
        "anthropic.messages", "refused", "invalid_api_key")
    assert (early["model"], early["requested_model"], early["provider"]) == ("", "", None)
    assert (budget["api"], budget["error_type"], budget["model"], budget["key_id"]) == (
        "openai.chat", "insufficient_quota", "deepseek-v4-flash", "k_1")
    for row in (early, budget):
        assert row["prompt_tokens"] == row["completion_tokens"] == 0
        assert row["cost_usd"] == 0 and row["provider"] is None and row["attempts"] == ""


def test_refusals_and_other_apis_reach_postgres_and_the_report(
    make_gateway: GatewayFactory, tmp_path: Path, pg_url: str
) -> None:
    gateway = metered(make_gateway, tmp_path, pg_url, ["deepseek"])
    with gateway.http() as http:
        served = chat(http, {"model": "deepseek-chat", "messages": CONVERSATION}
                      ).headers["x-request-id"]
        _other_api_and_refusals(writer_of(gateway))
        rows = rows_by_request(pg_url, 4)
        assert rows[served]["api"] == "openai.chat"  # the OpenAI Chat route's calls
        _check_refusal_rows(rows)
        report = http.get("/admin/usage?group_by=api").json()["data"]
        by_api = {r["api"]: r for r in report}
        assert (by_api["openai.chat"]["requests"], by_api["openai.chat"]["refused"]) == (2, 1)
        assert (by_api["anthropic.messages"]["requests"],
                by_api["anthropic.messages"]["refused"]) == (2, 1)
        assert all(r["errors"] == 0 for r in report)  # a refusal is not an error
        assert by_api["anthropic.messages"]["prompt_tokens"] == 100
        only = http.get("/admin/usage", params={"group_by": "model",
                                                "api": "anthropic.messages"}).json()
        assert only["api"] == "anthropic.messages"
        assert {r["model"]: r["requests"] for r in only["data"]} == {
            "": 1, "deepseek-v4-flash": 1}
        assert http.get("/admin/usage", params={"api": "x" * 33}).status_code == 400


def test_refusals_and_other_apis_reach_sqlite(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    path = tmp_path / "db" / "usage.db"
    gateway = metered(make_gateway, tmp_path, None, ["deepseek"],
                      extra=f", enabled: true, sqlite_path: {path}")
    _other_api_and_refusals(writer_of(gateway))

    def stored() -> dict[str, dict[str, Any]]:
        with sqlite3.connect(path) as db:
            db.row_factory = sqlite3.Row
            return {r["request_id"]: dict(r) for r in db.execute("SELECT * FROM usage")}

    wait_for(lambda: len(stored()) == 3)
    _check_refusal_rows(stored())
