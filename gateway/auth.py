"""Who may call the gateway, and as whom.

Identities, in the order they are tried:
- the master key (`GATEWAY_MASTER_KEY`): an admin;
- a virtual key (`sk-sy-...`, see gateway/keys): that key's Principal, with its team, models,
  limits and budgets;
- no master key configured and a client on loopback: an admin, whatever token it sends, so a
  fresh install on a laptop works with no setup and is never an open relay on a network.
Anyone else is refused. Admin routes (`/admin/*`) also need an admin Principal.

The hot path never waits for the database when a key is cached: key hash -> Principal lives
30 s while revocations arrive through Redis (`switchyard:keys`), 1 s without Redis, and a key
in use is looked up again in the background before it falls due; unknown keys are cached too,
and concurrent misses on one key share one lookup.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable

from starlette.requests import Request

from gateway.errors import AuthenticationFailed, GatewayError, PermissionDenied
from gateway.keys import tokens
from gateway.keys.cache import Entry, PrincipalCache
from gateway.keys.events import TEAM_PREFIX, KeyEvents
from gateway.keys.principal import MASTER, Principal
from gateway.keys.records import principal_for
from gateway.keys.store import KeyStore
from gateway.limits.redislink import RedisLink

log = logging.getLogger("gateway.auth")

TTL_SHARED = 30.0        # revocations arrive through Redis: the TTL only bounds a lost message
TTL_LOCAL = 1.0          # no Redis (or it is down): the TTL is how long a revocation takes
NEGATIVE_TTL_SHARED = 5.0
# A hung database must not hold requests: a key seen before waits at most REVALIDATE_WAIT for
# its re-lookup, then is served as last known (for up to STALE_MAX past its TTL) while the
# lookup goes on; once a lookup has failed or outlasted the wait, known keys do not wait at
# all until one succeeds again. A healthy database answers well inside the wait, so
# revocations still land within the TTL. A lookup gives up after LOOKUP_TIMEOUT.
REVALIDATE_WAIT = 0.1
STALE_MAX = 300.0
LOOKUP_TIMEOUT = 2.0
# A key in use is looked up again in the background once this share of its lifetime has
# passed, so under steady traffic no request waits for a re-lookup, even while entries live
# only TTL_LOCAL (Redis away).
REFRESH_AHEAD = 0.5
# When the revocation channel is lost (or regained), entries older than TTL_LOCAL get this
# long rather than none: they are refreshed in the background meanwhile, and a revocation
# still lands within TTL_LOCAL + _GRACE.
_GRACE = TTL_LOCAL / 2
_MAX_CONCURRENT_LOOKUPS = 2  # the request-path pool's two connections (gateway/db/engine.py):
# a flood of distinct bad keys queues here, not in the pool
_INVALID = "Incorrect API key provided."


class KeyAuthenticator:
    def __init__(
        self,
        master_key: str | None,
        store: KeyStore | None = None,
        redis: str | RedisLink | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._master_key = master_key.encode() if master_key else None
        self._store = store
        self._clock = clock
        self._wall = wall_clock
        self.cache = PrincipalCache()
        self._pending: dict[str, asyncio.Future[Entry]] = {}
        self._lookups = asyncio.Semaphore(_MAX_CONCURRENT_LOOKUPS)
        self._database_slow = False  # the last lookup failed or outlasted REVALIDATE_WAIT
        self._lost_at: float | None = None  # when a request first saw the channel lost
        self._subscriptions = 0  # (re)subscriptions to the key-change channel so far
        self._lookups_failing = False  # the last lookup failed (logged when it changes)
        # Through the process's one Redis link (a URL: its own, for tests and tools).
        self.events = (
            KeyEvents(redis, self._on_event, self._resubscribed)
            if redis and store is not None else None
        )

    def _revocations_live(self) -> bool:
        """Revocations arrive through Redis now; else cached keys live TTL_LOCAL at most. A
        Redis that hangs leaves the subscription looking alive; the link notices (a request's
        deadline or its heartbeat)."""
        return self.events is not None and self.events.live and self.events.link.up

    @property
    def loopback_only(self) -> bool:
        """No master key: only loopback clients and virtual keys get in."""
        return self._master_key is None

    @property
    def keys_enabled(self) -> bool:
        return self._store is not None

    async def start(self) -> None:
        if self.events is not None:
            await self.events.start()

    async def close(self) -> None:
        if self.events is not None:
            await self.events.close()

    # ---- the hot path ----------------------------------------------------------------------

    async def authenticate(
        self, authorization: str | None, api_key: str | None, client: str | None,
        *, viewer_ok: bool = False,
    ) -> Principal:
        """Who is calling; raises unless they may use the gateway. A viewer key (read-only,
        its team's usage) is refused unless the caller reads usage (`viewer_ok`): every model
        API and admin route refuses it without having to know it exists."""
        principal = await self._authenticate(authorization, api_key, client)
        if principal.role == "viewer" and not viewer_ok:
            raise PermissionDenied(
                "This is a read-only dashboard key: it can read its team's usage (/ui, "
                "/admin/usage) but cannot call models or change anything.", code="viewer_key")
        return principal

    async def _authenticate(
        self, authorization: str | None, api_key: str | None, client: str | None
    ) -> Principal:
        token = _token(authorization, api_key)
        if token:
            if self._master_key is not None and hmac.compare_digest(
                    token.encode(), self._master_key):
                return MASTER
            if tokens.looks_virtual(token):
                return await self._virtual(token)
        if self._master_key is None:
            if _is_loopback(client):
                return MASTER
            raise PermissionDenied(
                "This gateway has no GATEWAY_MASTER_KEY: clients not on loopback need a "
                "gateway key (sk-sy-...).")
        if not token:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")
        raise AuthenticationFailed(_INVALID)

    async def _virtual(self, token: str) -> Principal:
        if self._store is None or not tokens.is_virtual_key(token):
            raise AuthenticationFailed(_INVALID)
        key_hash = tokens.hash_key(token)
        entry = self.cache.get(key_hash)
        now = self._clock()
        stale_at = entry.stale_at if entry is not None else 0.0
        if self._revocations_live():
            self._lost_at = None
        elif entry is not None:  # the channel is lost: TTL_LOCAL, after a short grace
            if self._lost_at is None:
                self._lost_at = now
            stale_at = min(stale_at, max(entry.known_at + TTL_LOCAL, self._lost_at + _GRACE))
        if entry is None or stale_at <= now:
            if entry is not None and entry.principal is not None \
                    and now - entry.known_at < STALE_MAX:
                entry = await self._revalidate(key_hash, entry)
            else:
                entry = await self._refresh(key_hash, entry)
        elif now - entry.known_at >= (stale_at - entry.known_at) * REFRESH_AHEAD \
                and entry.principal is not None and key_hash not in self._pending \
                and not self._database_slow:
            self._lookup(key_hash, entry)  # in the background: this request does not wait
        if entry.principal is None:
            raise AuthenticationFailed(_INVALID)
        if entry.expires_ts is not None and self._wall() >= entry.expires_ts:
            raise AuthenticationFailed("This API key has expired.", code="key_expired")
        return entry.principal

    async def _revalidate(self, key_hash: str, known: Entry) -> Entry:
        """A known key's re-lookup: waited for up to REVALIDATE_WAIT while the database answers
        in time (so a revocation lands within the TTL), not at all while it does not (the
        last lookup failed or outlasted the wait); meanwhile the last known entry serves."""
        pending = self._lookup(key_hash, known)
        if self._database_slow:
            return known
        try:
            # Not wait_for: on Python 3.11 it drops a cancel (a hang-up, the drain's cut) that
            # lands as the lookup answers, and the request went on (gateway/tasks.py).
            async with asyncio.timeout(REVALIDATE_WAIT):
                return await asyncio.shield(pending)
        except TimeoutError:  # the lookup goes on; this request does not wait for it
            self._database_slow = True
            return known

    async def _refresh(self, key_hash: str, stale: Entry | None) -> Entry:
        return await asyncio.shield(self._lookup(key_hash, stale))

    def _lookup(self, key_hash: str, stale: Entry | None) -> asyncio.Future[Entry]:
        """One lookup per key at a time; a cancelled request does not cancel it for others."""
        pending = self._pending.get(key_hash)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key_hash, stale))
            self._pending[key_hash] = pending
            pending.add_done_callback(lambda done: self._forget(key_hash, done))
        return pending

    def _forget(self, key_hash: str, done: asyncio.Future[Entry]) -> None:
        if self._pending.get(key_hash) is done:
            del self._pending[key_hash]
        if not done.cancelled():
            done.exception()  # retrieved, even when every waiter has gone

    async def _load(self, key_hash: str, stale: Entry | None) -> Entry:
        generation = self.cache.generation
        # Cached for TTL_SHARED only if revocations were arriving throughout the lookup: one
        # that started while the channel was down may have read before a missed message.
        shared_from = self._subscriptions if self._revocations_live() else None
        try:
            async with self._lookups:
                found = await asyncio.wait_for(
                    self._store.lookup(key_hash), LOOKUP_TIMEOUT)  # type: ignore[union-attr]
        except Exception as exc:
            if not self._lookups_failing:  # once per outage, not once per key and second
                log.warning("cannot look up gateway keys (%s): serving keys seen in the last "
                            "%d s as last known, refusing others with 503",
                            type(exc).__name__, STALE_MAX)
            self._database_slow = self._lookups_failing = True
            if stale is not None and self._clock() - stale.known_at < STALE_MAX:
                # database down or hung: keep what we knew, for a bounded while
                entry = Entry(stale.principal, stale.expires_ts, self._clock() + TTL_LOCAL,
                              stale.known_at)
                self.cache.put(key_hash, entry, self._clock())
                return entry
            raise GatewayError("The gateway cannot check API keys right now; try again shortly.",
                               status=503, code="auth_unavailable") from None
        if self._lookups_failing:
            log.info("gateway key lookups answer again")
        self._database_slow = self._lookups_failing = False
        now = self._clock()
        shared = shared_from == self._subscriptions and self._revocations_live()
        if found is None or found[0].revoked_at is not None:
            entry = Entry(None, None, now + (NEGATIVE_TTL_SHARED if shared else TTL_LOCAL), now)
        else:
            key, team = found
            entry = Entry(principal_for(key, team),
                          key.expires_at.timestamp() if key.expires_at else None,
                          now + (TTL_SHARED if shared else TTL_LOCAL), now)
        if self.cache.generation == generation:  # nothing was invalidated meanwhile
            self.cache.put(key_hash, entry, now)
        return entry

    # ---- invalidation ----------------------------------------------------------------------

    async def announce(self, message: str) -> None:
        """A key (its hash) or a team (`team:<name>`) changed: forget it here and everywhere."""
        self._on_event(message)
        if self.events is not None:
            await self.events.publish(message)

    def _resubscribed(self) -> None:
        """Messages may have been missed: every entry is re-checked within TTL_LOCAL of its
        lookup (after a short grace, in the background for keys in use). Lookups in flight
        still store what they read, for TTL_LOCAL (see `_load`)."""
        self._subscriptions += 1
        self.cache.expire_within(TTL_LOCAL, self._clock() + _GRACE)

    def _on_event(self, message: str) -> None:
        if message.startswith(TEAM_PREFIX):
            self.cache.drop_team(message[len(TEAM_PREFIX):])
        else:
            self.cache.drop(message)

    # ---- Starlette routes ------------------------------------------------------------------

    async def authenticate_request(self, request: Request, *,
                                   viewer_ok: bool = False) -> Principal:
        """`authenticate` for a Starlette request (models list, admin routes, the usage page)."""
        return await self.authenticate(
            request.headers.get("authorization"), request.headers.get("x-api-key"),
            request.client.host if request.client else None, viewer_ok=viewer_ok)

    async def require_admin(self, request: Request) -> Principal:
        principal = await self.authenticate_request(request)
        if not principal.is_admin:
            raise PermissionDenied("This endpoint needs the gateway's master key; gateway "
                                   "keys cannot use it.", code="admin_only")
        return principal


def _token(authorization: str | None, api_key: str | None) -> str:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    return api_key.strip() if api_key else ""


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "127.0.0.1" or host == "::1":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
