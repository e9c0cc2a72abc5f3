"""Hostile input end to end: deep bodies on every surface, and admin inputs at the edges of
numbers, calendars and text. Each is a 400 (never a 5xx, never a 503 that looks like an
outage)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.db import pg
from tests.db.pg import query
from tests.e2e.conftest import GatewayFactory, Upstreams
from tests.e2e.test_keys import MASTER, admin, keyed

pg_database = pg.pg_database
pg_url = pg.pg_url

SURFACE_PATHS = ["/v1/chat/completions", "/v1/responses", "/v1/messages",
                 "/v1/messages/count_tokens", "/api/chat", "/api/generate", "/api/show"]


@pytest.fixture
def db(pg_url: str) -> str:
    query(pg_url, "TRUNCATE api_keys, teams")
    return pg_url


def deep_body(depth: int) -> bytes:
    return (b'{"model": "deepseek-v4-flash", "stream": true, "tools": '
            + b"[" * depth + b"]" * depth + b"}")


@pytest.mark.parametrize("depth", [100, 300, 1000])
@pytest.mark.parametrize("path", SURFACE_PATHS)
def test_deep_json_is_a_400_naming_the_field_on_every_surface(
    make_gateway: GatewayFactory, upstreams: Upstreams, path: str, depth: int
) -> None:
    with make_gateway(["deepseek"]).http() as http:
        response = http.post(path, content=deep_body(depth),
                             headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "tools" in response.text
    assert upstreams.deepseek.requests == []


BAD_KEYS: list[dict[str, Any]] = [
    {"rpm": 2**31},
    {"tpm": 2**63},
    {"budget_usd": 1e300},
    {"name": "a\u0000b"},
    {"models": ["deepseek-chat\u0000"]},
    {"metadata": {"note": "x\u0000"}},
    {"metadata": {"k\u0000": 1}},
    {"metadata": {"big": "x" * 20_000}},
    {"expires_at": "9999-12-31T23:59:59-05:00"},
    {"expires_at": "9999-12-31T23:59:59+00:00"},
    {"expires_at": "0001-01-01T00:00:00+05:00"},
]


def test_hostile_admin_inputs_are_400s(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = keyed(make_gateway, tmp_path, db, redis=False)
    team = f"t-{secrets.token_hex(4)}"
    with admin(gateway) as http:
        assert http.post("/admin/teams", json={"name": team}).status_code == 201
        created = http.post("/admin/keys", json={"name": "ok"})
        assert created.status_code == 201
        key_id = created.json()["id"]
        for fields in BAD_KEYS:
            response = http.post("/admin/keys", json={"name": "k", **fields})
            assert response.status_code == 400, (fields, response.text)
            response = http.patch(f"/admin/keys/{key_id}", json=fields)
            assert response.status_code == 400, (fields, response.text)
        deep = http.post("/admin/keys", content=b'{"name": "k", "metadata": '
                         + b'{"a":' * 300 + b"1" + b"}" * 300 + b"}")
        assert deep.status_code == 400 and "metadata" in deep.text
        for bad in ({"rpm": 2**31}, {"metadata": {"x": "\u0000"}}):
            assert http.patch(f"/admin/teams/{team}", json=bad).status_code == 400
        for path in ("/admin/keys/abc%00def", f"/admin/teams/{team}%00",
                     "/admin/keys?team=a%00b", "/admin/keys/" + "x" * 300):
            assert http.get(path).status_code == 400, path
        assert http.delete("/admin/keys/abc%00def").status_code == 400
        for params in ({"from": "9999-12-31T23:59:59-14:00"},
                       {"to": "0001-01-01T00:00:00+01:00"},
                       {"from": "0001-01-01"}, {"to": "9999-12-31"},
                       {"from": "2026-01-01\u0000"}, {"api": "a\u0000b"}):
            response = http.get("/admin/usage", params=params)
            assert response.status_code == 400, (params, response.text)
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        page = http.get("/ui", params={"to": "9999-12-31"},
                        headers={"authorization": f"Bearer {MASTER}"})
        assert page.status_code == 400
