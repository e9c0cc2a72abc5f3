"""Who may open the usage page, and what they see: the rule is gateway/api/access.py's
`report_scope` (an admin sees the whole gateway, a viewer key its own team, other keys
nothing); this module adds the browser session.

A browser cannot send a bearer header on navigation, so `/ui/login` takes a key once and sets
an HttpOnly cookie that never holds the key: for the master key, `m.<issued>.<HMAC keyed by
the master key>`; for a viewer key, `v.<key id>.<issued>.<HMAC keyed by the key's stored
hash>`, checked against the key's row on every load, so revoking the key, or changing its role
or team, ends the session at once. `issued` (Unix seconds) is under the HMAC, and the server
refuses a cookie older than COOKIE_SECONDS whatever the browser keeps: a stolen cookie is not
good forever.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request

from gateway.api.access import report_scope
from gateway.errors import GatewayError
from gateway.keys.records import KeyRecord, principal_for
from gateway.keys.tokens import hash_key
from gateway.state import GatewayState

COOKIE = "switchyard_ui"
COOKIE_SECONDS = 8 * 3600
_VIEWER = "v."
_MASTER = "m."
_LABEL = b"switchyard-ui-v1"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Someone allowed in; `team` scopes every query (None: the whole gateway)."""

    team: str | None = None


def _mac(secret: str, *parts: str) -> str:
    message = _LABEL + b"\0" + "\0".join(parts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _now() -> str:
    return str(int(time.time()))


def _fresh(issued: str) -> bool:
    """Issued within COOKIE_SECONDS (and not in the future, a minute of clock skew aside)."""
    if not issued.isdigit():
        return False
    age = time.time() - int(issued)
    return -60 <= age <= COOKIE_SECONDS


def master_cookie(master_key: str) -> str:
    issued = _now()
    return f"{_MASTER}{issued}.{_mac(master_key, 'm', issued)}"


def master_session_valid(cookie: str, master_key: str) -> bool:
    if not cookie.startswith(_MASTER):
        return False
    issued, _, mac = cookie[len(_MASTER):].partition(".")
    return _fresh(issued) and hmac.compare_digest(mac, _mac(master_key, "m", issued))


def _viewer_cookie(key_id: str, key_hash: str, issued: str) -> str:
    return f"{_VIEWER}{key_id}.{issued}.{_mac(key_hash, 'v', key_id, issued)}"


def _master(state: GatewayState) -> str | None:
    return state.config.master_key.get_secret_value() if state.config.master_key else None


def _scope(key: KeyRecord) -> Viewer | None:
    """A viewer key still valid and still a viewer: its team; else None."""
    if key.revoked_at is not None or key.expired(datetime.now(UTC)):
        return None
    try:
        return Viewer(report_scope(principal_for(key, None)))
    except GatewayError:
        return None


async def viewer_of(request: Request, state: GatewayState) -> Viewer | None:
    """Who this is (session cookie, else a bearer key, else loopback without a master key),
    or None when they may not see the page."""
    master = _master(state)
    cookie = request.cookies.get(COOKIE) or ""
    if master and cookie and master_session_valid(cookie, master):
        return Viewer()
    if cookie.startswith(_VIEWER) and cookie.count(".") == 3 and state.keys is not None:
        key_id, issued, _ = cookie[len(_VIEWER):].split(".")
        try:
            key = await state.keys.get_key(key_id) if _fresh(issued) else None
        except Exception:  # unknown key, or the database is down: not signed in
            key = None
        if key is not None and hmac.compare_digest(
                cookie, _viewer_cookie(key.id, key.key_hash, issued)):
            return _scope(key)
    try:
        principal = await state.auth.authenticate_request(request, viewer_ok=True)
        return Viewer(report_scope(principal))
    except GatewayError:
        return None


async def cookie_for_key(key: str, request: Request, state: GatewayState) -> str | None:
    """The session cookie for a key given at sign-in (the master key or a viewer key), or
    None if that key may not open the page."""
    master = _master(state)
    if master and hmac.compare_digest(key.encode(), master.encode()):
        return master_cookie(master)
    try:
        principal = await state.auth.authenticate(
            f"Bearer {key}", None, request.client.host if request.client else None,
            viewer_ok=True)
        if report_scope(principal) is None or principal.key_id is None:
            return None  # loopback without a master key needs no session
    except GatewayError:
        return None
    return _viewer_cookie(principal.key_id, hash_key(key), _now())
