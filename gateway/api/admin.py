"""Admin endpoints: usage reports from the metering database.

Same gate as the rest of the gateway (the master key, or loopback only when none is set); keys
for teams arrive with a later issue and will narrow what a caller may see."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.json import json_response
from gateway.db.queries import GROUP_BYS, GroupBy
from gateway.errors import GatewayError, InvalidRequest
from gateway.metering.writer import MeteringWriter
from gateway.state import GatewayState


async def usage(request: Request) -> Response:
    """`GET /admin/usage?group_by=model|provider|key|team|day&from=&to=`: one JSON row per
    group with requests, tokens by type and cost. `from`/`to` are ISO dates or datetimes
    (UTC unless an offset is given); `to` is exclusive, a bare date means its midnight."""
    state: GatewayState = request.app.state.gateway
    state.auth.check_request(request)
    writer: MeteringWriter | None = request.app.state.metering
    if writer is None:
        raise GatewayError("Metering is disabled on this gateway.", status=503,
                           code="metering_disabled")
    group_by = request.query_params.get("group_by", "model")
    if group_by not in GROUP_BYS:
        raise InvalidRequest(
            f"group_by must be one of {', '.join(GROUP_BYS)}", param="group_by")
    start = parse_time(request.query_params.get("from"), "from")
    end = parse_time(request.query_params.get("to"), "to")
    try:
        rows = await writer.store.report(cast(GroupBy, group_by), start, end)
    except Exception:
        raise GatewayError("The usage database is unavailable.", status=503,
                           code="database_unavailable") from None
    return json_response({
        "group_by": group_by,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "data": rows,
    })


def parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{name}: expected an ISO date or datetime",
                             param=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
