"""Gateway keys and teams end to end: real gateways over real HTTP, keys in a real Postgres,
revocations and limits shared through a real Redis.

Prices are overridden ($1000 per 1M tokens: a 3-token answer costs $0.003), so a $0.005
budget runs out after two requests.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from gateway.auth import KeyAuthenticator
from gateway.cli import cli
from gateway.logs import JsonFormatter
from tests.db import pg
from tests.db.pg import query
from tests.e2e.conftest import GatewayFactory, RunningGateway, Upstreams

REDIS_URL = "redis://127.0.0.1:6379/0"
MASTER = "sk-master-" + secrets.token_hex(12)
MESSAGES = [{"role": "user", "content": "hi"}]
PRICES = """
prices:
  providers:
    deepseek:
      deepseek-v4-flash: [{from: 2020-01-01, cache_hit: 1000, cache_miss: 1000, output: 1000}]
      deepseek-v4-pro: [{from: 2020-01-01, cache_hit: 1000, cache_miss: 1000, output: 1000}]
"""

pg_database = pg.pg_database
pg_url = pg.pg_url


@pytest.fixture
def db(pg_url: str) -> str:
    query(pg_url, "TRUNCATE api_keys, teams")
    return pg_url


def keyed(make_gateway: GatewayFactory, tmp_path: Path, db: str | None, *,
          redis: bool = True, providers: tuple[str, ...] = ("deepseek",),
          env: dict[str, str] | None = None) -> RunningGateway:
    spool = tmp_path / f"spool-{secrets.token_hex(3)}"
    yaml = f"metering: {{flush_interval: 0.02, spool_path: {spool}}}\n" + PRICES
    if redis:
        # These tests are about what Redis shares, not about Redis failing (test_redis_faults
        # is): a CI box's stall must not mark Redis down and make a limit count in-process.
        yaml += "redis: {timeout: 2.0, request_timeout: 2.0}\n"
    environment = {"GATEWAY_MASTER_KEY": MASTER, **(env or {})}
    if db:
        environment["DATABASE_URL"] = db
    if redis:
        environment["REDIS_URL"] = REDIS_URL
    return make_gateway(list(providers), yaml=yaml, env=environment)


def admin(gateway: RunningGateway, token: str = MASTER) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, timeout=20,
                        headers={"authorization": f"Bearer {token}"})


def chat(gateway: RunningGateway, key: str, model: str = "deepseek-chat",
         **extra: Any) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", timeout=20,
                      headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": MESSAGES, **extra})


def new_key(gateway: RunningGateway, **fields: Any) -> dict[str, Any]:
    with admin(gateway) as http:
        response = http.post("/admin/keys", json={"name": "test", **fields})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def new_team(gateway: RunningGateway, base: str, **fields: Any) -> str:
    """A team with a fresh name: its limits and spend live in the shared Redis across runs."""
    name = f"{base}-{secrets.token_hex(4)}"
    with admin(gateway) as http:
        response = http.post("/admin/teams", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return name


def auth_of(gateway: RunningGateway) -> KeyAuthenticator:
    auth: KeyAuthenticator = gateway.server.app.state.gateway.auth  # type: ignore[attr-defined]
    return auth


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def fresh_minute(margin: float = 4.0) -> None:
    """Rate limits count per wall-clock minute: start a limit test well inside one."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# ---- management ------------------------------------------------------------------------------


def test_keys_and_teams_through_the_admin_api(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    eng = f"eng-{secrets.token_hex(4)}"  # limits and spend live in Redis across runs
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with admin(gateway) as http:
        assert http.post("/admin/teams", json={"name": eng, "rpm": 100, "budget_usd": 5,
                                               "metadata": {"cc": "42"}}).status_code == 201
        again = http.post("/admin/teams", json={"name": eng})
        assert again.status_code == 409 and error_of(again)["code"] == "team_exists"
        assert http.post("/admin/teams", json={"name": "bad name!"}).status_code == 400

        created = http.post("/admin/keys", json={
            "name": "ci", "team": eng, "models": ["deepseek-chat", "deepseek-v4-pro"],
            "rpm": 10, "budget_usd": 1, "budget_period": "day", "expires_at": expires,
            "metadata": {"owner": "ana"}})
        assert created.status_code == 201, created.text
        key = created.json()
        raw = key["key"]
        assert raw.startswith("sk-sy-") and len(raw) == 46
        assert key["key_prefix"] == raw[:10] and "key_hash" not in key
        assert key["models"] == ["deepseek-v4-flash", "deepseek-v4-pro"]  # aliases resolved
        assert (key["team"], key["rpm"], key["budget_usd"], key["budget_period"]) == (
            eng, 10, 1.0, "day")
        stored = query(db, "SELECT * FROM api_keys")
        assert stored[0]["key_hash"] == hashlib.sha256(raw.encode()).hexdigest()
        assert raw not in str(stored)

        unknown = http.post("/admin/keys", json={"name": "x", "models": ["gpt-4o"]})
        assert unknown.status_code == 400
        assert error_of(unknown)["param"] == "models" and "gpt-4o" in error_of(unknown)["message"]
        assert http.post("/admin/keys", json={"name": "x", "team": "nope"}).status_code == 400
        assert http.post("/admin/keys", json={"name": "x", "rpm": 0}).status_code == 400
        assert http.post("/admin/keys", content=b"{").status_code == 400

        listed = http.get("/admin/keys").json()["data"]
        assert [k["id"] for k in listed] == [key["id"]]
        assert "key" not in listed[0] and raw not in str(listed) and "key_hash" not in listed[0]
        assert http.get(f"/admin/keys/{key['id']}").json()["name"] == "ci"
        assert http.get("/admin/keys/nope").status_code == 404
        assert http.get(f"/admin/teams/{eng}").json()["metadata"] == {"cc": "42"}

        patched = http.patch(f"/admin/keys/{key['id']}", json={"rpm": 20, "budget_usd": None})
        assert patched.status_code == 200
        assert (patched.json()["rpm"], patched.json()["budget_usd"]) == (20, None)
        assert http.patch(f"/admin/keys/{key['id']}", json={"name": None}).status_code == 400
        team = http.patch(f"/admin/teams/{eng}", json={"tpm": 5000}).json()
        assert (team["tpm"], team["rpm"]) == (5000, 100)

        assert chat(gateway, raw).status_code == 200

        second = http.post("/admin/keys", json={"name": "other", "team": eng}).json()
        busy = http.delete(f"/admin/teams/{eng}")
        assert busy.status_code == 409 and error_of(busy)["code"] == "team_has_keys"

        revoked = http.delete(f"/admin/keys/{key['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert chat(gateway, raw).status_code == 401  # same process: at once
        assert [k["id"] for k in http.get("/admin/keys").json()["data"]] == [second["id"]]
        everything = http.get("/admin/keys", params={"include_revoked": "true"}).json()["data"]
        assert {k["id"] for k in everything} == {key["id"], second["id"]}
        assert http.patch(f"/admin/keys/{key['id']}", json={"rpm": 1}).status_code == 409

        http.delete(f"/admin/keys/{second['id']}")
        assert http.delete(f"/admin/teams/{eng}").status_code == 200
        assert http.get("/admin/teams").json()["data"] == []


def test_cli_manages_keys_and_teams(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    runner = CliRunner()
    team_name = f"cli-team-{secrets.token_hex(4)}"
    env = {"GATEWAY_URL": gateway.url, "GATEWAY_MASTER_KEY": MASTER}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    team = orjson.loads(run("teams", "create", team_name, "--budget", "2", "--period", "day",
                            "--json"))
    assert (team["budget_usd"], team["budget_period"]) == (2.0, "day")
    out = orjson.loads(run("keys", "create", "--name", "ci", "--team", team_name,
                           "--models", "deepseek-chat", "--rpm", "5", "--meta", "owner=ci",
                           "--expires", "2099-01-01", "--json"))
    raw, key_id = out["key"], out["id"]
    assert out["models"] == ["deepseek-v4-flash"] and out["metadata"] == {"owner": "ci"}
    assert out["expires_at"].startswith("2099-01-01")
    assert chat(gateway, raw).status_code == 200

    table = run("keys", "create", "--name", "plain")
    assert "key: sk-sy-" in table
    assert key_id in run("keys", "list") and raw not in run("keys", "list")
    assert len(orjson.loads(run("keys", "list", "--team", team_name, "--json"))) == 1

    updated = orjson.loads(run("keys", "update", key_id, "--rpm", "7", "--clear", "models",
                               "--json"))
    assert (updated["rpm"], updated["models"]) == (7, None)
    assert chat(gateway, raw, model="deepseek-v4-pro").status_code == 200
    out = run("keys", "list")
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "budget period" not in out and "budget period" in run("keys", "list", "--wide")
    assert "no active key has the id or name 'nobody'" in run("keys", "revoke", "nobody",
                                                             code=1)
    run("keys", "revoke", raw)  # the key itself, as the user holds it
    assert chat(gateway, raw).status_code == 401
    plain = orjson.loads(run("keys", "list", "--json"))[0]
    assert plain["name"] == "plain"
    assert "key revoked" in run("keys", "revoke", "plain")  # by name
    assert orjson.loads(run("keys", "list", "--json")) == []

    assert team_name in run("teams", "list")
    assert orjson.loads(run("teams", "update", team_name, "--tpm", "1000", "--json"))[
        "tpm"] == 1000
    run("teams", "delete", team_name)
    assert orjson.loads(run("teams", "list", "--json")) == []

    assert "unknown model" in run("keys", "create", "--name", "x", "--models", "gpt-4o",
                                  code=1).lower()
    wrong = runner.invoke(cli, ["keys", "list", "--master-key", "wrong"],
                          env={"GATEWAY_URL": gateway.url})
    assert wrong.exit_code == 1 and "401" in wrong.output
    assert "--master-key" in wrong.output and "GATEWAY_MASTER_KEY" in wrong.output
    down = runner.invoke(cli, ["keys", "list", "--url", "http://127.0.0.1:9"], env=env)
    assert down.exit_code == 1 and "cannot reach" in down.output
    assert "--url" in down.output and "GATEWAY_URL" in down.output


def test_admin_routes_refuse_gateway_keys(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    raw = new_key(gateway)["key"]
    with admin(gateway, raw) as http:
        for path in ("/admin/keys", "/admin/teams", "/admin/usage"):
            response = http.get(path)
            assert response.status_code == 403, path
            assert error_of(response)["type"] == "permission_error"
            assert "x-request-id" in response.headers
        assert http.post("/admin/keys", json={"name": "escalate"}).status_code == 403
        assert http.get("/v1/models").status_code == 200  # a key may list models
    assert httpx.get(gateway.url + "/admin/keys").status_code == 401
    with admin(gateway, "sk-sy-" + "A" * 40) as http:
        assert http.get("/v1/models").status_code == 401


def test_without_a_database_keys_are_off_and_the_master_key_still_works(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = keyed(make_gateway, tmp_path, None, redis=False)
    with admin(gateway) as http:
        response = http.post("/admin/keys", json={"name": "x"})
        assert response.status_code == 503
        assert error_of(response)["code"] == "keys_disabled"
        assert "database" in error_of(response)["message"]
    assert chat(gateway, MASTER).status_code == 200
    assert chat(gateway, "sk-sy-" + "B" * 40).status_code == 401


# ---- authentication --------------------------------------------------------------------------


def test_a_revoked_key_is_refused_by_another_process_within_a_second(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    first, second = keyed(make_gateway, tmp_path, db), keyed(make_gateway, tmp_path, db)
    wait_for(lambda: all(auth_of(g).events.live for g in (first, second)))  # type: ignore[union-attr]
    key = new_key(first)
    assert chat(second, key["key"]).status_code == 200  # now cached there for 30 s
    with admin(first) as http:
        assert http.delete(f"/admin/keys/{key['id']}").status_code == 200
    revoked_at = time.monotonic()
    while chat(second, key["key"]).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, "revocation did not arrive within 1 s"
        time.sleep(0.02)
    assert error_of(chat(second, key["key"]))["type"] == "authentication_error"


def test_team_changes_reach_every_key_of_the_team_in_other_processes(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    first, second = keyed(make_gateway, tmp_path, db), keyed(make_gateway, tmp_path, db)
    wait_for(lambda: all(auth_of(g).events.live for g in (first, second)))  # type: ignore[union-attr]
    fresh_minute()
    team = new_team(first, "movers")
    key = new_key(first, team=team)["key"]
    assert chat(second, key).status_code == 200
    with admin(first) as http:
        assert http.patch(f"/admin/teams/{team}", json={"rpm": 1}).status_code == 200
    # The other process had the key cached without a team limit; it drops it at once and the
    # team's new limit (counting from now) refuses the second request.
    wait_for(lambda: chat(second, key).status_code == 429, seconds=1.0)


def test_expired_keys_are_refused(make_gateway: GatewayFactory, tmp_path: Path,
                                  db: str) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    with admin(gateway) as http:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        assert http.post("/admin/keys", json={"name": "x", "expires_at": past}).status_code == 400
    soon = datetime.now(UTC) + timedelta(seconds=1.2)
    key = new_key(gateway, expires_at=soon.isoformat())["key"]
    assert chat(gateway, key).status_code == 200
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    refused = chat(gateway, key)  # still cached: expiry is checked on every request
    assert refused.status_code == 401 and error_of(refused)["code"] == "key_expired"


def test_a_key_only_reaches_its_models(make_gateway: GatewayFactory, tmp_path: Path,
                                       db: str) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    key = new_key(gateway, models=["deepseek-chat"])["key"]  # = deepseek-v4-flash
    for allowed in ("deepseek-chat", "deepseek-v4-flash", "deepseek-reasoner"):
        assert chat(gateway, key, model=allowed).status_code == 200, allowed
    refused = chat(gateway, key, model="deepseek-v4-pro")
    assert refused.status_code == 404 and error_of(refused)["code"] == "model_not_found"
    assert chat(gateway, MASTER, model="deepseek-v4-pro").status_code == 200


# ---- limits and budgets ----------------------------------------------------------------------


def test_a_keys_rpm_limit_is_a_429_with_rate_limit_headers(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    key = new_key(gateway, rpm=2)["key"]
    fresh_minute()
    first = chat(gateway, key)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert chat(gateway, key).status_code == 200
    refused = chat(gateway, key)
    assert refused.status_code == 429
    assert error_of(refused)["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    assert chat(gateway, MASTER).status_code == 200  # the master key has no limit


def test_two_gateways_share_one_rate_limit_through_redis(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    first, second = keyed(make_gateway, tmp_path, db), keyed(make_gateway, tmp_path, db)
    team = new_team(first, "shared")
    key = new_key(first, team=team)["key"]
    other = new_key(first, team=team, rpm=100)["key"]
    with admin(first) as http:
        http.patch(f"/admin/teams/{team}", json={"rpm": 3})
    fresh_minute()
    statuses = [chat(g, k).status_code
                for g, k in ((first, key), (second, key), (first, other), (second, other))]
    assert statuses == [200, 200, 200, 429]  # the team's 3 per minute, across keys and processes


def spend_until_refused(gateway: RunningGateway, key: str, tries: int = 30) -> int:
    """Requests answered before the budget refused one (budgets are charged just after each
    answer, so a refusal may lag by a request or two)."""
    for answered in range(tries):
        response = chat(gateway, key)
        if response.status_code == 429:
            assert error_of(response)["type"] == "insufficient_quota"
            assert error_of(response)["code"] == "insufficient_quota"
            return answered
        assert response.status_code == 200, response.text
        time.sleep(0.05)
    raise AssertionError("the budget never ran out")


def test_a_keys_budget_and_its_teams_budget_run_out(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    key = new_key(gateway, budget_usd=0.005, budget_period="day")["key"]
    assert spend_until_refused(gateway, key) >= 1

    team = new_team(gateway, "frugal", budget_usd=0.005)
    spender = new_key(gateway, team=team)["key"]
    bystander = new_key(gateway, team=team)["key"]
    assert spend_until_refused(gateway, spender) >= 1
    refused = chat(gateway, bystander)  # never used, but its team's budget is spent
    assert refused.status_code == 429 and team in error_of(refused)["message"]
    with admin(gateway) as http:  # raising the budget lets the team spend again, at once
        http.patch(f"/admin/teams/{team}", json={"budget_usd": 100})
    assert chat(gateway, bystander).status_code == 200


def test_usage_rows_are_attributed_to_key_and_team(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = keyed(make_gateway, tmp_path, db)
    team = new_team(gateway, "analytics")
    key = new_key(gateway, team=team)
    assert chat(gateway, key["key"]).status_code == 200
    assert chat(gateway, key["key"], stream=True).status_code == 200
    assert chat(gateway, MASTER).status_code == 200

    rows: list[dict[str, Any]] = []

    def stored() -> bool:
        nonlocal rows
        rows = query(db, "SELECT key_id, team, cost_usd FROM usage")
        return len(rows) >= 3

    wait_for(stored)
    mine = [r for r in rows if r["key_id"] == key["id"]]
    assert len(mine) == 2 and all(r["team"] == team for r in mine)
    assert sum(1 for r in rows if r["key_id"] is None and r["team"] is None) == 1
    with admin(gateway) as http:
        by_key = http.get("/admin/usage", params={"group_by": "key"}).json()["data"]
        by_team = http.get("/admin/usage", params={"group_by": "team"}).json()["data"]
    assert {r["key"]: r["requests"] for r in by_key}[key["id"]] == 2
    assert {r["team"]: r["requests"] for r in by_team}[team] == 2


# ---- hardening -------------------------------------------------------------------------------


def test_no_key_reaches_logs_metrics_errors_or_usage_rows(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path, db: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_upstream = "sk-or-wrong-" + secrets.token_hex(10)
    # OpenRouter first with a key it refuses (401, logged, failed over), then DeepSeek. No
    # Redis: the tripped breaker would be shared with every other test for two minutes.
    gateway = keyed(make_gateway, tmp_path, db, providers=("openrouter", "deepseek"),
                    env={"OPENROUTER_API_KEY": wrong_upstream}, redis=False)
    key = new_key(gateway, models=["deepseek-chat"], rpm=3)
    raw = key["key"]
    revoked = new_key(gateway)
    with admin(gateway) as http:
        http.delete(f"/admin/keys/{revoked['id']}")

    bodies: list[str] = []
    wrong_virtual = "sk-sy-" + secrets.token_urlsafe(30)
    malformed = "sk-sy-" + secrets.token_hex(8)
    attempts = [
        (raw, "deepseek-chat", {}), (raw, "deepseek-chat", {"stream": True}),
        (raw, "deepseek-v4-pro", {}),              # not allowed: 404
        (raw, "no-such-model", {}),                 # unknown: 404
        (raw, "deepseek-chat", {}), (raw, "deepseek-chat", {}),  # over rpm: 429
        (MASTER, "deepseek-chat", {}), (MASTER, "deepseek-v4-pro", {"stream": True}),
        (revoked["key"], "deepseek-chat", {}), (wrong_virtual, "deepseek-chat", {}),
        (malformed, "deepseek-chat", {}), (MASTER + "x", "deepseek-chat", {}),
    ]
    for token, model, extra in attempts:
        response = chat(gateway, token, model=model, **extra)
        bodies.append(response.text + str(dict(response.headers)))
    with admin(gateway, raw) as http:
        bodies += [http.get("/admin/keys").text, http.get("/admin/usage").text]
    with admin(gateway) as http:
        metrics = http.get("/metrics").text
        bodies.append(http.get("/admin/keys", params={"include_revoked": "true"}).text)
        bodies.append(http.get("/admin/usage", params={"group_by": "key"}).text)
    wait_for(lambda: len(query(db, "SELECT id FROM usage")) >= 5)
    time.sleep(0.2)  # the last rows and charges
    rows = str(query(db, "SELECT * FROM usage")) + str(query(db, "SELECT * FROM api_keys"))
    access = [r for r in caplog.records if r.name == "gateway.access"]
    # one access line per call (the unknown callers' 401s included), in text and in JSON
    assert len(access) >= len(attempts), len(access)
    logs = caplog.text + "".join(
        str(r.args) + str(r.exc_info) + str(getattr(r, "__dict__", {})) for r in caplog.records)
    logs += "".join(JsonFormatter().format(r) for r in access)
    assert "refused the gateway's API key" in logs  # the upstream 401 path ran and was logged
    assert f"key_id={key['id']}" in logs and "key_name=" in logs and '"status":"ok"' in logs

    secrets_ = {
        "virtual key": raw, "revoked key": revoked["key"], "wrong key": wrong_virtual,
        "malformed key": malformed, "master key": MASTER,
        "wrong upstream key": wrong_upstream,
        **{f"{name} key": upstreams[name].key for name in ("deepseek", "openrouter", "ollama")},
    }
    for what, secret in secrets_.items():
        for where, text in (("logs", logs), ("metrics", metrics), ("usage rows", rows),
                            ("responses", "\n".join(bodies))):
            assert secret not in text, f"{what} found in {where}"
            assert secret[-12:] not in text, f"the tail of the {what} found in {where}"


def test_refusals_of_a_known_caller_are_usage_rows_and_every_refusal_a_metric(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    """Real requests, refused by the gateway: a row where the caller is known (400, 404, 429),
    and a `refused` series with its reason for every one, unknown callers (401) included."""
    gateway = keyed(make_gateway, tmp_path, db)
    key = new_key(gateway, rpm=1, models=["deepseek-chat"])
    fresh_minute()
    assert chat(gateway, key["key"]).status_code == 200
    assert chat(gateway, key["key"]).status_code == 429
    assert chat(gateway, key["key"], model="deepseek-v4-pro").status_code == 404
    assert chat(gateway, key["key"], temperature="hot").status_code == 400
    assert chat(gateway, "sk-not-a-key").status_code == 401

    rows: list[dict[str, Any]] = []

    def stored() -> bool:
        nonlocal rows
        rows = query(db, "SELECT * FROM usage WHERE key_id = $1 ORDER BY ts", key["id"])
        return len(rows) >= 4

    wait_for(stored)
    assert [(r["status"], r["error_type"]) for r in rows] == [
        ("ok", None), ("refused", "rate_limit_exceeded"), ("refused", "model_not_found"),
        ("refused", "invalid_request_error")]
    assert all(r["api"] == "openai.chat" and r["provider"] is None for r in rows[1:])
    assert rows[2]["model"] == "deepseek-v4-pro"  # resolved before the allow-list refused it
    assert rows[3]["model"] == ""  # refused while parsing: no model known
    metrics = httpx.get(gateway.url + "/metrics", timeout=20).text
    for reason in ("rate_limit_exceeded", "model_not_found", "invalid_request_error",
                   "invalid_api_key"):
        assert any('status="refused"' in line and f'reason="{reason}"' in line
                   and 'api="openai.chat"' in line for line in metrics.splitlines()
                   if line.startswith("gateway_requests_total")), reason
