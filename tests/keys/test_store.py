"""Keys and teams stored in the embedded SQLite database (Postgres: tests/e2e/test_keys.py),
and key changes carried between processes by real Redis pub/sub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.auth import KeyAuthenticator
from gateway.config import load_config
from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.errors import AuthenticationFailed, GatewayError, InvalidRequest, NotFound
from gateway.keys.manager import KeyManager
from gateway.keys.specs import KeyCreate, KeyUpdate, TeamCreate, TeamUpdate, parse
from gateway.keys.store import KeyStore
from gateway.models import ModelCatalogue

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[KeyStore]:
    usage = UsageStore(async_url(None, tmp_path / "keys.db"))
    yield KeyStore(usage)
    await usage.close()


def manager(store: KeyStore, auth: KeyAuthenticator) -> KeyManager:
    return KeyManager(store, ModelCatalogue(load_config(env={})), auth.announce)


async def test_keys_and_teams_round_trip_on_sqlite(store: KeyStore) -> None:
    auth = KeyAuthenticator("m", store)
    keys = manager(store, auth)
    await keys.create_team(parse(TeamCreate, {"name": "eng", "tpm": 500, "budget_usd": 2}))
    with pytest.raises(InvalidRequest) as dup:
        await keys.create_team(parse(TeamCreate, {"name": "eng"}))
    assert dup.value.status == 409
    expires = datetime.now(UTC) + timedelta(days=3)
    record, raw = await keys.create_key(parse(KeyCreate, {
        "name": "ci", "team": "eng", "models": ["deepseek-reasoner"], "rpm": 5,
        "expires_at": expires.isoformat(), "metadata": {"owner": "ana"}}))
    assert record.allowed_models == ("deepseek-v4-flash",)
    stored = await keys.get_key(record.id)
    assert stored.expires_at == expires and stored.expires_at.tzinfo is not None  # UTC back
    assert stored.metadata == {"owner": "ana"} and stored.key_hash == record.key_hash

    principal = await auth.authenticate(f"Bearer {raw}", None, None)
    assert principal.key_id == record.id and principal.limits[1].tpm == 500

    await keys.update_team("eng", parse(TeamUpdate, {"tpm": 50}))
    assert (await auth.authenticate(f"Bearer {raw}", None, None)).limits[1].tpm == 50
    updated = await keys.update_key(record.id, parse(KeyUpdate, {"models": None, "rpm": 9}))
    assert (updated.allowed_models, updated.rpm, updated.team) == (None, 9, "eng")

    with pytest.raises(InvalidRequest, match="still has 1 active key"):
        await keys.delete_team("eng")
    await keys.revoke_key(record.id)
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {raw}", None, None)
    await keys.delete_team("eng")
    assert (await keys.get_key(record.id)).team is None
    assert await keys.list_keys() == [] and len(await keys.list_keys(include_revoked=True)) == 1
    with pytest.raises(NotFound):
        await keys.get_team("eng")


async def test_bad_input_is_a_400_naming_the_field(store: KeyStore) -> None:
    keys = manager(store, KeyAuthenticator("m", store))
    with pytest.raises(InvalidRequest) as info:
        await keys.create_key(parse(KeyCreate, {"name": "x", "models": ["gpt-4o"]}))
    assert info.value.param == "models" and "gpt-4o" in info.value.message
    bodies: list[object] = [
        {"name": ""}, {"name": "x", "budget_period": "week"}, {"name": "x", "nope": 1},
        {"name": "x", "expires_at": "soon"}, [], {"name": None},
    ]
    for body in bodies:
        with pytest.raises(InvalidRequest):
            parse(KeyCreate, body)
    with pytest.raises(InvalidRequest, match="team"):
        await keys.create_key(parse(KeyCreate, {"name": "x", "team": "ghosts"}))
    with pytest.raises(InvalidRequest):
        parse(TeamCreate, {"name": "has space"})


async def test_a_change_reaches_another_process_through_redis(store: KeyStore) -> None:
    here = KeyAuthenticator("m", store, REDIS_URL)
    there = KeyAuthenticator("m", store, REDIS_URL)
    for auth in (here, there):
        await auth.start()
    try:
        deadline = time.monotonic() + 5
        while not (here.events and here.events.live and there.events and there.events.live):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        keys = manager(store, here)
        record, raw = await keys.create_key(parse(KeyCreate, {"name": "x"}))
        await there.authenticate(f"Bearer {raw}", None, None)
        assert there.cache.get(record.key_hash) is not None  # cached for 30 s there
        started = time.monotonic()
        await keys.revoke_key(record.id)
        while there.cache.get(record.key_hash) is not None:
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.005)
        with pytest.raises(AuthenticationFailed):
            await there.authenticate(f"Bearer {raw}", None, None)
    finally:
        for auth in (here, there):
            await auth.close()


async def test_redis_down_means_short_cache_lives_not_failures(store: KeyStore) -> None:
    auth = KeyAuthenticator("m", store, "redis://127.0.0.1:1/0")
    await auth.start()
    try:
        keys = manager(store, auth)
        _, raw = await keys.create_key(parse(KeyCreate, {"name": "x"}))
        assert (await auth.authenticate(f"Bearer {raw}", None, None)).key_name == "x"
        assert auth.events is not None and not auth.events.live
        await keys.update_key((await keys.list_keys())[0].id, parse(KeyUpdate, {"rpm": 3}))
        assert (await auth.authenticate(f"Bearer {raw}", None, None)).limits[0].rpm == 3
    finally:
        await auth.close()


async def test_keys_without_a_database_are_refused(tmp_path: Path) -> None:
    auth = KeyAuthenticator("m", None, REDIS_URL)
    assert auth.events is None and not auth.keys_enabled
    with pytest.raises(GatewayError):
        await auth.authenticate("Bearer sk-sy-" + "a" * 40, None, None)
