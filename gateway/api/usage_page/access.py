"""Who may open the usage page, and what they see: an admin sees the whole gateway.

A browser cannot send a bearer header on navigation, so `/ui/login` takes a key once and sets
an HttpOnly cookie that never holds the key: for the master key, an HMAC of it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.requests import Request

from gateway.errors import GatewayError
from gateway.state import GatewayState

COOKIE = "switchyard_ui"
COOKIE_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class Viewer:
    """Someone allowed in; `team` scopes every query (None: the whole gateway)."""

    team: str | None = None


ADMIN = Viewer()


def master_cookie(master_key: str) -> str:
    return hmac.new(master_key.encode(), b"switchyard-ui-v1", hashlib.sha256).hexdigest()


def _master(state: GatewayState) -> str | None:
    return state.config.master_key.get_secret_value() if state.config.master_key else None


async def viewer_of(request: Request, state: GatewayState) -> Viewer | None:
    """The admin (master key cookie or bearer; loopback when no master key is set), or None."""
    master = _master(state)
    cookie = request.cookies.get(COOKIE)
    if master and cookie and hmac.compare_digest(cookie, master_cookie(master)):
        return ADMIN
    try:
        principal = await state.auth.authenticate_request(request)
    except GatewayError:
        return None
    return ADMIN if principal.is_admin else None


async def cookie_for_key(key: str, state: GatewayState) -> str | None:
    """The session cookie value for a key given at sign-in, or None if it may not sign in."""
    master = _master(state)
    if master and hmac.compare_digest(key.encode(), master.encode()):
        return master_cookie(master)
    return None
