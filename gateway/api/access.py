"""Who may read usage reports, and which part of them: the one rule `/admin/usage` and the
`/ui` page share.

The master key (or a loopback client when no master key is set) reads everything; a viewer key
(`gateway keys create --role viewer --team T`) reads its own team's usage and nothing else; any
other gateway key is refused with a 403."""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import PermissionDenied
from gateway.keys.principal import Principal
from gateway.state import GatewayState

EVERYTHING = None  # the scope of an admin: no team filter


def report_scope(principal: Principal) -> str | None:
    """None (everything) for an admin, the team's name for a viewer key; raises otherwise."""
    if principal.is_admin:
        return EVERYTHING
    if principal.role == "viewer" and principal.team:
        return principal.team
    raise PermissionDenied("Usage reports need the gateway's master key or a viewer key "
                           "(gateway keys create --role viewer --team T).", code="admin_only")


async def request_report_scope(request: Request) -> str | None:
    """Authenticates the request (viewer keys allowed) and returns its `report_scope`."""
    state: GatewayState = request.app.state.gateway
    principal = await state.auth.authenticate_request(request, viewer_ok=True)
    return report_scope(principal)
