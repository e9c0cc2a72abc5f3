"""Admin endpoints: usage reports, and keys and teams.

Admins only: the master key, or a loopback client when no master key is set. A gateway key is
refused with a 403 whatever it may otherwise do. Keys live in the metering database, so with
metering off these routes answer 503 and the gateway keeps working on master key / loopback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.access import request_report_scope
from gateway.api.csvexport import csv_response
from gateway.api.json import json_response
from gateway.db.queries import GROUP_BYS, GroupBy
from gateway.db.store import REPORT_TIMEOUT, ReportTimeout
from gateway.errors import GatewayError, InvalidRequest
from gateway.keys.manager import KeyManager
from gateway.keys.records import KeyRecord, TeamRecord
from gateway.keys.specs import KeyCreate, KeyUpdate, TeamCreate, TeamUpdate, parse
from gateway.metering.writer import MeteringWriter
from gateway.state import GatewayState
from gateway.surfaces.body import json_value

_API_MAX = 32  # the usage table's `api` column
_PARAM_MAX = 256
_BODY_MAX = 1 << 20  # admin bodies are a few fields and some metadata


async def usage(request: Request) -> Response:
    """`GET /admin/usage?group_by=model|provider|key|team|day|api|thinking|status&from=&to=
    &api=&format=json|csv`: one row per group with requests, tokens by type, cost, errors,
    refusals, failovers and cache savings, read from the hourly rollups. `from`/`to` are ISO
    dates or datetimes (UTC unless an offset is given); a bare date in `to` includes that day,
    a datetime is exclusive; both are taken to the hour. `api` (e.g. `anthropic.messages`)
    keeps only calls served by it. A viewer key sees only its own team's rows
    (gateway/api/access.py)."""
    team = await request_report_scope(request)
    _plain(request)
    writer: MeteringWriter | None = request.app.state.metering
    if writer is None:
        raise GatewayError("Metering is disabled on this gateway.", status=503,
                           code="metering_disabled")
    group_by = request.query_params.get("group_by", "model")
    if group_by not in GROUP_BYS:
        raise InvalidRequest(
            f"group_by must be one of {', '.join(GROUP_BYS)}", param="group_by")
    start = parse_time(request.query_params.get("from"), "from")
    end = parse_time(request.query_params.get("to"), "to", end=True)
    if start is not None and end is not None and start >= end:
        raise InvalidRequest("from must come before to", param="from")
    form = request.query_params.get("format", "json")
    if form not in ("json", "csv"):
        raise InvalidRequest("format must be json or csv", param="format")
    api = request.query_params.get("api") or None
    if api is not None and len(api) > _API_MAX:
        raise InvalidRequest(f"api: at most {_API_MAX} characters", param="api")
    try:
        rows = await writer.store.report(cast(GroupBy, group_by), start, end, api, team=team)
    except ReportTimeout:
        raise GatewayError(
            f"The usage report took longer than {REPORT_TIMEOUT:g} s (the database is slow or "
            "busy); try a shorter range or again later.", status=503, code="report_timeout",
            headers={"retry-after": "10"}) from None
    except Exception:
        raise GatewayError("The usage database is unavailable.", status=503,
                           code="database_unavailable") from None
    if form == "csv":
        return csv_response(rows, f"usage-by-{group_by}.csv")
    return json_response({
        "group_by": group_by,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        **({"api": api} if api is not None else {}),
        **({"team": team} if team is not None else {}),
        "data": rows,
    })


# Dates a report may ask about: far enough to mean "everything", near enough that the
# arithmetic on them (UTC offsets, a day added) never leaves Python's calendar.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_time(value: str | None, name: str, *, end: bool = False) -> datetime | None:
    """An ISO date or datetime as an aware UTC datetime, or a 400. With `end`, a bare date
    means the end of that day (the next midnight): "to 2026-12-07" includes the 7th."""
    if not value:
        return None
    if "\x00" in value or len(value) > 64:
        raise InvalidRequest(f"{name}: expected an ISO date or datetime", param=name)
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), time(), UTC)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest(f"{name}: expected an ISO date or datetime",
                             param=name) from None
    if not EARLIEST <= parsed <= LATEST:
        raise InvalidRequest(f"{name}: must be between {EARLIEST.date()} and {LATEST.date()}",
                             param=name)
    if end and len(value) == 10:
        parsed += timedelta(days=1)
    return parsed


def _plain(request: Request) -> None:
    """Path and query values reach SQL as text: a NUL (`%00`) or a huge value is bad input
    (400), never a database error that looks like an outage (503)."""
    for where, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            if isinstance(value, str) and ("\x00" in value or len(value) > _PARAM_MAX):
                raise InvalidRequest(
                    f"{name}: invalid {where} value (NUL, or over {_PARAM_MAX} characters)",
                    param=name)


# ---- keys and teams -------------------------------------------------------------------------

Handler = Callable[[KeyManager, Request], Awaitable[Response]]


def _keys_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Admin check, then the manager (503 without a database), and database failures as 503
    rather than 500s that might carry driver text."""

    async def endpoint(request: Request) -> Response:
        state: GatewayState = request.app.state.gateway
        await state.auth.require_admin(request)
        _plain(request)
        if state.keys is None:
            raise GatewayError(
                "Gateway keys need a database, and metering is disabled on this gateway "
                "(set DATABASE_URL, or metering.enabled: true for the SQLite file).",
                status=503, code="keys_disabled")
        try:
            return await handler(state.keys, request)
        except (SQLAlchemyError, OSError):
            raise GatewayError("The key database is unavailable.", status=503,
                               code="database_unavailable") from None

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > _BODY_MAX:
        raise InvalidRequest(f"The request body is larger than {_BODY_MAX} bytes.",
                             status=413, code="request_too_large")
    return json_value(raw)


def _key(record: KeyRecord) -> dict[str, Any]:
    return record.to_json()


def _team(record: TeamRecord) -> dict[str, Any]:
    return record.to_json()


def _listing(items: list[dict[str, Any]]) -> Response:
    return json_response({"object": "list", "data": items})


@_keys_route
async def create_key(keys: KeyManager, request: Request) -> Response:
    """`POST /admin/keys`: 201 with the key itself, shown this once."""
    record, raw = await keys.create_key(parse(KeyCreate, await _body(request)))
    return json_response({**_key(record), "key": raw}, status=201)


@_keys_route
async def list_keys(keys: KeyManager, request: Request) -> Response:
    """`GET /admin/keys[?team=T&include_revoked=true]`: never hashes, never keys."""
    include = request.query_params.get("include_revoked", "").lower() in ("1", "true", "yes")
    records = await keys.list_keys(include_revoked=include,
                                   team=request.query_params.get("team") or None)
    return _listing([_key(r) for r in records])


@_keys_route
async def get_key(keys: KeyManager, request: Request) -> Response:
    return json_response(_key(await keys.get_key(request.path_params["key_id"])))


@_keys_route
async def update_key(keys: KeyManager, request: Request) -> Response:
    spec = parse(KeyUpdate, await _body(request))
    return json_response(_key(await keys.update_key(request.path_params["key_id"], spec)))


@_keys_route
async def revoke_key(keys: KeyManager, request: Request) -> Response:
    """`DELETE /admin/keys/{id}`: revoked at once in every process (through Redis)."""
    return json_response(_key(await keys.revoke_key(request.path_params["key_id"])))


@_keys_route
async def create_team(keys: KeyManager, request: Request) -> Response:
    record = await keys.create_team(parse(TeamCreate, await _body(request)))
    return json_response(_team(record), status=201)


@_keys_route
async def list_teams(keys: KeyManager, request: Request) -> Response:
    return _listing([_team(r) for r in await keys.list_teams()])


@_keys_route
async def get_team(keys: KeyManager, request: Request) -> Response:
    return json_response(_team(await keys.get_team(request.path_params["name"])))


@_keys_route
async def update_team(keys: KeyManager, request: Request) -> Response:
    spec = parse(TeamUpdate, await _body(request))
    return json_response(_team(await keys.update_team(request.path_params["name"], spec)))


@_keys_route
async def delete_team(keys: KeyManager, request: Request) -> Response:
    """`DELETE /admin/teams/{name}`: refused (409) while the team has active keys."""
    record = await keys.delete_team(request.path_params["name"])
    return json_response({**_team(record), "deleted": True})


ROUTES: tuple[tuple[str, Callable[[Request], Awaitable[Response]], str], ...] = (
    ("/admin/usage", usage, "GET"),
    ("/admin/keys", create_key, "POST"),
    ("/admin/keys", list_keys, "GET"),
    ("/admin/keys/{key_id}", get_key, "GET"),
    ("/admin/keys/{key_id}", update_key, "PATCH"),
    ("/admin/keys/{key_id}", revoke_key, "DELETE"),
    ("/admin/teams", create_team, "POST"),
    ("/admin/teams", list_teams, "GET"),
    ("/admin/teams/{name}", get_team, "GET"),
    ("/admin/teams/{name}", update_team, "PATCH"),
    ("/admin/teams/{name}", delete_team, "DELETE"),
)
