"""Viewer keys end to end (real gateway, real HTTP, keys and usage in real Postgres): a viewer
key made with `gateway keys create --role viewer --team T` reads T's usage and nothing else;
every model API and every admin route refuses it with an OpenAI-format 403."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from gateway.cli import cli
from gateway.metering.buckets import bucket_of, percentile
from tests.db import pg
from tests.db.pg import query
from tests.e2e.conftest import GatewayFactory
from tests.e2e.test_keys import (
    MASTER,
    admin,
    chat,
    db,
    error_of,
    keyed,
    new_key,
    new_team,
    wait_for,
)

pg_database = pg.pg_database
pg_url = pg.pg_url
__all__ = ["db"]  # the fixture, imported for pytest

MODEL_CALLS: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("POST", "/v1/chat/completions", {"model": "deepseek-chat",
                                      "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/v1/responses", {"model": "deepseek-chat", "input": "hi"}),
    ("POST", "/v1/messages", {"model": "claude-haiku", "max_tokens": 5,
                              "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/api/chat", {"model": "deepseek-v4-flash",
                           "messages": [{"role": "user", "content": "hi"}]}),
    ("GET", "/v1/models", None),
)
ADMIN_CALLS: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("GET", "/admin/keys", None),
    ("POST", "/admin/keys", {"name": "escalate"}),
    ("GET", "/admin/teams", None),
    ("POST", "/admin/teams", {"name": "escalate"}),
)


def test_a_viewer_key_reads_only_its_teams_usage_and_calls_nothing(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    red, blue = new_team(gateway, "red"), new_team(gateway, "blue")
    red_user, blue_user = new_key(gateway, team=red)["key"], new_key(gateway, team=blue)["key"]
    for key, calls in ((red_user, 2), (blue_user, 3), (MASTER, 1)):
        for _ in range(calls):
            assert chat(gateway, key).status_code == 200
    wait_for(lambda: query(db, "SELECT count(*) AS n FROM usage")[0]["n"] >= 6)

    result = CliRunner().invoke(
        cli, ["keys", "create", "--role", "viewer", "--team", red, "--json"],
        env={"GATEWAY_URL": gateway.url, "GATEWAY_MASTER_KEY": MASTER})
    assert result.exit_code == 0, result.output
    created = orjson.loads(result.output)
    viewer = created["key"]
    assert created["role"] == "viewer" and created["team"] == red
    assert created["name"] == f"{red} dashboard"

    with admin(gateway, viewer) as http:
        for method, path, body in MODEL_CALLS + ADMIN_CALLS:
            response = http.request(method, path, json=body)
            assert response.status_code == 403, (path, response.text)
            error = response.json()["error"]  # each API's own error shape
            if path.startswith("/api/"):  # Ollama: {"error": "..."}
                assert "read-only dashboard key" in error, (path, error)
            else:
                assert error["type"] == "permission_error", (path, error)
                assert "read-only dashboard key" in error["message"], (path, error)
        for group_by in ("team", "key", "model", "day"):
            response = http.get("/admin/usage", params={"group_by": group_by})
            assert response.status_code == 200, response.text
            data = response.json()
            assert data["team"] == red
            assert sum(r["requests"] for r in data["data"]) == 2, (group_by, data)
        assert [r["team"] for r in http.get(
            "/admin/usage", params={"group_by": "team"}).json()["data"]] == [red]
        # the page's provider table: percentiles of its own team's calls (it showed means)
        check_percentiles(http, db, red)
    with admin(gateway) as http:  # the master key still sees everyone
        check_percentiles(http, db, None)  # everyone's calls
        # (the viewer's refused calls are metered too, without a team: it was refused first)
        teams = {r["team"]: r["requests"] - r["refused"] for r in http.get(
            "/admin/usage", params={"group_by": "team"}).json()["data"]}
        assert (teams[red], teams[blue], teams[None]) == (2, 3, 1)
        refused = http.post("/admin/keys", json={"name": "v", "role": "viewer"})
        assert refused.status_code == 400 and "team" in error_of(refused)["message"]
        bad_role = http.post("/admin/keys", json={"name": "v", "role": "root", "team": red})
        assert bad_role.status_code == 400
    with admin(gateway, red_user) as http:  # a user key reads no report
        assert http.get("/admin/usage").status_code == 403
    assert httpx.get(gateway.url + "/admin/usage").status_code == 401


def check_percentiles(http: httpx.Client, db: str, team: str | None) -> None:
    """The /ui provider table's deepseek row (CSV) for whoever `http` is, checked against
    the raw rows of `team` (None: every call): p50 and p95 latency are their buckets'."""
    response = http.get("/ui", params={"format": "csv", "table": "providers"})
    assert response.status_code == 200, response.text
    (row,) = [r for r in csv.DictReader(io.StringIO(response.text))
              if r["provider"] == "deepseek"]
    where = "provider = 'deepseek'" + ("" if team is None else " AND team = $1")
    raw = query(db, f"SELECT latency_ms FROM usage WHERE {where}", *(
        () if team is None else (team,)))
    counts = dict(Counter(bucket_of(r["latency_ms"]) for r in raw))
    assert float(row["latency_p50"]) == pytest.approx(percentile(counts, 0.5))
    assert float(row["latency_p95"]) == pytest.approx(percentile(counts, 0.95))
