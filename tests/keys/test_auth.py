"""KeyAuthenticator against an in-memory key store: what is cached, for how long, and who gets
in. (Postgres, Redis and real HTTP: tests/e2e/test_keys.py.)"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.auth import REFRESH_AHEAD, REVALIDATE_WAIT, TTL_LOCAL, KeyAuthenticator
from gateway.errors import AuthenticationFailed, GatewayError, PermissionDenied
from gateway.keys import tokens
from gateway.keys.principal import MASTER, Budget
from gateway.keys.records import KeyRecord, TeamRecord, principal_for
from gateway.limits.ratelimit import Limit


class FakeStore:
    def __init__(self) -> None:
        self.keys: dict[str, tuple[KeyRecord, TeamRecord | None]] = {}
        self.lookups = 0
        self.down = False
        self.delay = 0.0

    def add(self, team: TeamRecord | None = None, **fields: object) -> str:
        raw = tokens.mint()
        record = KeyRecord(id=tokens.new_key_id(), name="k", key_hash=tokens.hash_key(raw),
                           key_prefix=raw[:10], team=team.name if team else None,
                           **fields)  # type: ignore[arg-type]
        self.keys[record.key_hash] = (record, team)
        return raw

    async def lookup(self, key_hash: str) -> tuple[KeyRecord, TeamRecord | None] | None:
        self.lookups += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise OSError("database down")
        return self.keys.get(key_hash)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(token: str) -> str:
    return f"Bearer {token}"


def make(master: str | None = "sk-master") -> tuple[KeyAuthenticator, FakeStore, Clock]:
    store, clock = FakeStore(), Clock()
    auth = KeyAuthenticator(master, store, None, clock=clock)  # type: ignore[arg-type]
    return auth, store, clock


async def test_master_key_loopback_and_strangers() -> None:
    auth, _, _ = make()
    assert await auth.authenticate(bearer("sk-master"), None, "10.0.0.1") is MASTER
    assert await auth.authenticate(None, "sk-master", "10.0.0.1") is MASTER
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(None, None, "127.0.0.1")  # a master key is set: needed
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(bearer("sk-nope"), None, "127.0.0.1")
    open_auth, _, _ = make(master=None)
    assert await open_auth.authenticate(bearer("unused"), None, "::1") is MASTER
    with pytest.raises(PermissionDenied):
        await open_auth.authenticate(bearer("unused"), None, "10.0.0.1")


async def test_a_virtual_key_is_looked_up_once_then_served_from_the_cache() -> None:
    auth, store, clock = make(master=None)  # keys work off loopback even with no master key
    team = TeamRecord("eng", rpm=100, budget_usd=5.0, budget_period="day")
    raw = store.add(team, rpm=10, tpm=1000, budget_usd=1.0, budget_period="month",
                    allowed_models=("deepseek-v4-flash",))
    principal = await auth.authenticate(bearer(raw), None, "10.0.0.1")
    key_id = principal.key_id
    assert (principal.team, principal.is_admin) == ("eng", False)
    assert principal.allowed_models == frozenset({"deepseek-v4-flash"})
    assert principal.limits == (Limit(f"key:{key_id}", 10, 1000), Limit("team:eng", 100, None))
    assert principal.budgets == (Budget(f"key:{key_id}", 1.0, "month"),
                                 Budget("team:eng", 5.0, "day"))
    for _ in range(100):
        assert await auth.authenticate(None, raw, "10.0.0.1") is principal
    assert store.lookups == 1
    clock.now += TTL_LOCAL + 0.01  # no Redis: entries live a second
    await auth.authenticate(bearer(raw), None, "10.0.0.1")
    assert store.lookups == 2


async def test_bad_keys_are_refused_and_cached_and_malformed_ones_never_looked_up() -> None:
    auth, store, _ = make()
    unknown = tokens.mint()
    for _ in range(50):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(bearer(unknown), None, "10.0.0.1")
    assert store.lookups == 1
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(bearer("sk-sy-short"), None, "10.0.0.1")
    assert store.lookups == 1


async def test_concurrent_misses_on_one_key_share_one_lookup() -> None:
    auth, store, _ = make()
    store.delay = 0.05
    raw = store.add()
    results = await asyncio.gather(
        *(auth.authenticate(bearer(raw), None, "10.0.0.1") for _ in range(20)))
    assert store.lookups == 1 and len({id(p) for p in results}) == 1


async def test_expiry_is_checked_on_every_request_from_the_cache() -> None:
    store, clock, wall = FakeStore(), Clock(), Clock()
    auth = KeyAuthenticator("m", store, None, clock=clock, wall_clock=wall)  # type: ignore[arg-type]
    raw = store.add(expires_at=datetime.fromtimestamp(wall.now + 10, UTC))
    await auth.authenticate(bearer(raw), None, None)
    wall.now += 10
    with pytest.raises(AuthenticationFailed) as info:
        await auth.authenticate(bearer(raw), None, None)
    assert info.value.code == "key_expired" and store.lookups == 1


async def test_announce_drops_a_key_or_a_whole_team_at_once() -> None:
    auth, store, _ = make()
    team = TeamRecord("eng")
    raw, other, solo = store.add(team), store.add(team), store.add()
    for token in (raw, other, solo):
        await auth.authenticate(bearer(token), None, None)
    revoked, team_ = store.keys[tokens.hash_key(raw)]
    store.keys[revoked.key_hash] = (replace(revoked, revoked_at=datetime.now(UTC)), team_)
    await auth.announce(tokens.hash_key(raw))
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(bearer(raw), None, None)
    await auth.announce("team:eng")
    assert len(auth.cache) == 2  # the revoked key (negative) and the key with no team
    await auth.authenticate(bearer(other), None, None)
    assert store.lookups == 5


async def test_a_lookup_racing_an_invalidation_is_not_cached() -> None:
    auth, store, _ = make()
    store.delay = 0.05
    raw = store.add()
    pending = asyncio.ensure_future(auth.authenticate(bearer(raw), None, None))
    await asyncio.sleep(0.01)
    await auth.announce(tokens.hash_key(raw))  # e.g. revoked while the lookup was in flight
    await pending
    assert auth.cache.get(tokens.hash_key(raw)) is None


async def test_database_down_keeps_known_keys_briefly_and_refuses_unknown_with_503() -> None:
    auth, store, clock = make()
    raw = store.add()
    principal = await auth.authenticate(bearer(raw), None, None)
    store.down = True
    clock.now += 5
    assert await auth.authenticate(bearer(raw), None, None) is principal
    with pytest.raises(GatewayError) as info:
        await auth.authenticate(bearer(tokens.mint()), None, None)
    assert info.value.status == 503 and info.value.code == "auth_unavailable"


def test_keys_have_one_shape_and_only_their_hash_is_kept() -> None:
    raw = tokens.mint()
    assert tokens.is_virtual_key(raw) and len(raw) == 46 and raw.startswith("sk-sy-")
    assert tokens.mint() != raw
    assert len(tokens.hash_key(raw)) == 64 and tokens.display_prefix(raw) == raw[:10]
    assert not tokens.is_virtual_key("sk-sy-" + "x" * 39)


def test_a_key_without_limits_or_team_has_none() -> None:
    record = KeyRecord(id="abc", name="n", key_hash="h", key_prefix="p")
    principal = principal_for(record, None)
    assert (principal.limits, principal.budgets, principal.allowed_models) == ((), (), None)


async def test_a_hung_database_does_not_hold_a_known_key() -> None:
    """Stale-while-revalidate: past its TTL a known key waits at most REVALIDATE_WAIT for the
    re-lookup, then is served as last known while the lookup goes on; a healthy database
    answers inside the wait, so a revocation is still seen."""
    from gateway.auth import STALE_MAX

    auth, store, clock = make()
    raw = store.add()
    principal = await auth.authenticate(bearer(raw), None, None)
    store.delay = 30  # hung
    clock.now += TTL_LOCAL + 1
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await auth.authenticate(bearer(raw), None, None) is principal
    assert await auth.authenticate(bearer(raw), None, None) is principal
    assert loop.time() - began < 3 * REVALIDATE_WAIT
    assert store.lookups == 2  # one re-lookup in flight, shared
    clock.now += STALE_MAX  # bounded: too old to vouch for
    with pytest.raises(GatewayError) as info:
        await asyncio.wait_for(auth.authenticate(bearer(raw), None, None), 5)
    assert info.value.code == "auth_unavailable"


async def test_once_the_database_is_known_slow_known_keys_do_not_wait_at_all() -> None:
    """The first re-lookup to outlast REVALIDATE_WAIT marks the database slow: every other
    known key due for its re-lookup is then served at once (no 0.1 s each, again and again,
    for the whole outage); the first lookup to succeed makes requests wait for them again."""

    auth, store, clock = make()
    first, second = store.add(), store.add()
    await auth.authenticate(bearer(first), None, None)
    await auth.authenticate(bearer(second), None, None)
    store.delay = 30  # hung
    clock.now += TTL_LOCAL + 1
    loop = asyncio.get_running_loop()
    await auth.authenticate(bearer(first), None, None)  # waits REVALIDATE_WAIT, once
    began = loop.time()
    for _ in range(5):
        await auth.authenticate(bearer(second), None, None)
    assert loop.time() - began < REVALIDATE_WAIT / 2
    await asyncio.sleep(0.01)
    assert store.lookups == 4  # each key's re-lookup started, in the background

    for task in list(auth._pending.values()):  # the hung lookups give up
        task.cancel()
    await asyncio.sleep(0)
    store.delay = 0.01  # back: the next lookup succeeds, and revocations are waited for
    record, team = store.keys[tokens.hash_key(first)]
    store.keys[record.key_hash] = (replace(record, revoked_at=datetime.now(UTC)), team)
    await auth.authenticate(bearer(store.add()), None, None)
    clock.now += TTL_LOCAL + 1
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(bearer(first), None, None)


async def test_a_request_cancelled_as_its_re_lookup_answers_stays_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hang-up or the drain's cut that lands as the re-lookup answers: wait_for on Python
    3.11 returned the lookup's answer instead (CPython gh-86296) and the request went on."""
    import gateway.auth as auth_module

    monkeypatch.setattr(auth_module, "REVALIDATE_WAIT", 60)  # the answer decides, not time
    auth, store, clock = make()
    raw = store.add()
    await auth.authenticate(bearer(raw), None, None)
    clock.now += TTL_LOCAL + 1  # due for its re-lookup
    answer = asyncio.Event()
    lookup = store.lookup

    async def answers_when_told(key_hash: str) -> tuple[KeyRecord, TeamRecord | None] | None:
        await answer.wait()
        return await lookup(key_hash)

    store.lookup = answers_when_told  # type: ignore[method-assign]
    request = asyncio.create_task(auth.authenticate(bearer(raw), None, None))
    key_hash = tokens.hash_key(raw)
    for _ in range(100):
        if key_hash in auth._pending:
            break
        await asyncio.sleep(0)
    pending = auth._pending[key_hash]  # the request waits on it now
    pending.add_done_callback(lambda _: request.cancel())  # cancelled as it answers
    answer.set()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(30):
            await request
    assert request.cancelled()


async def test_a_revocation_is_seen_when_the_database_answers_in_time() -> None:
    auth, store, clock = make()
    raw = store.add()
    await auth.authenticate(bearer(raw), None, None)
    record, team = store.keys[tokens.hash_key(raw)]
    store.keys[record.key_hash] = (replace(record, revoked_at=datetime.now(UTC)), team)
    store.delay = 0.01
    clock.now += TTL_LOCAL + 1
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(bearer(raw), None, None)


async def test_a_lost_revocation_channel_shortens_what_is_already_cached() -> None:
    """Keys cached for 30 s while revocations arrived through Redis are re-checked within
    TTL_LOCAL of their lookup (after a grace of TTL_LOCAL / 2, refreshed in the background
    meanwhile) once the channel is lost, or once Redis is known to hang."""
    from types import SimpleNamespace

    from gateway.auth import _GRACE

    auth, store, clock = make()
    events = SimpleNamespace(live=True, link=SimpleNamespace(up=True))
    auth.events = events  # type: ignore[assignment]
    raw = store.add()
    await auth.authenticate(bearer(raw), None, None)
    clock.now += TTL_LOCAL + 0.5
    await auth.authenticate(bearer(raw), None, None)
    await asyncio.sleep(0.01)
    assert store.lookups == 1  # revocations are live: the 30 s entry stands
    events.live = False
    await auth.authenticate(bearer(raw), None, None)  # served, and refreshed meanwhile
    await asyncio.sleep(0.01)
    assert store.lookups == 2
    clock.now += TTL_LOCAL * REFRESH_AHEAD + 0.01  # half its (1 s) life: refreshed ahead
    await auth.authenticate(bearer(raw), None, None)
    await asyncio.sleep(0.01)
    assert store.lookups == 3
    events.live = True
    clock.now += TTL_LOCAL * REFRESH_AHEAD + 0.01
    await auth.authenticate(bearer(raw), None, None)  # refreshed: cached for 30 s
    await asyncio.sleep(0.01)
    assert store.lookups == 4
    clock.now += TTL_LOCAL + 0.5
    await auth.authenticate(bearer(raw), None, None)
    await asyncio.sleep(0.01)
    assert store.lookups == 4
    events.link.up = False  # the subscription looks alive, but the link saw Redis hang
    store.delay = 30  # and nothing waits for the refresh it starts
    began = asyncio.get_running_loop().time()
    await auth.authenticate(bearer(raw), None, None)
    assert asyncio.get_running_loop().time() - began < 0.05
    await asyncio.sleep(0.01)
    assert store.lookups == 5
    clock.now += _GRACE + 0.01  # past the grace and its lookup still hung: due, and the
    began = asyncio.get_running_loop().time()  # request waits REVALIDATE_WAIT at most
    await auth.authenticate(bearer(raw), None, None)
    assert asyncio.get_running_loop().time() - began < 2 * REVALIDATE_WAIT
    for task in list(auth._pending.values()):
        task.cancel()


async def test_a_revocation_lands_within_ttl_local_and_grace_while_the_channel_is_down(
) -> None:
    """Redis away: a key in use is refreshed in the background every TTL_LOCAL / 2, so a
    revocation is refused within about that, and no request waits for a lookup."""
    from types import SimpleNamespace

    auth, store, clock = make()
    events = SimpleNamespace(live=False, link=SimpleNamespace(up=False))
    auth.events = events  # type: ignore[assignment]
    raw = store.add()
    await auth.authenticate(bearer(raw), None, None)
    record, team = store.keys[tokens.hash_key(raw)]
    store.keys[record.key_hash] = (replace(record, revoked_at=datetime.now(UTC)), team)
    store.delay = 0.01
    loop = asyncio.get_running_loop()
    refused_at = None
    for step in range(40):  # a request every 50 ms of the (fake) clock
        clock.now += 0.05
        began = loop.time()
        try:
            await auth.authenticate(bearer(raw), None, None)
        except AuthenticationFailed:
            refused_at = step * 0.05
            break
        assert loop.time() - began < 0.005  # served from the cache, never waiting
        await asyncio.sleep(0.02)  # the background refresh completes
    assert refused_at is not None and refused_at <= TTL_LOCAL
