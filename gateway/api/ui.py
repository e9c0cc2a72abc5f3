"""`/ui`: the built-in usage page, and `/ui/login`.

Server-rendered HTML with an SVG chart: no JavaScript framework, no CDN (the gateway may run
where browsers cannot fetch assets), nothing to build. The pieces are in gateway/api/usage_page
(queries on the rollups, views, chart, HTML, CSV); this module is the two routes: who is
asking, then the page, one of its tables as CSV, or a clear message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.usage_page.access import COOKIE, COOKIE_SECONDS, cookie_for_key, viewer_of
from gateway.api.usage_page.csv_export import to_csv
from gateway.api.usage_page.format import money
from gateway.api.usage_page.html import login_page, message_page, usage_page
from gateway.api.usage_page.load import load
from gateway.db.store import ReportTimeout
from gateway.metering.writer import MeteringWriter
from gateway.state import GatewayState

__all__ = ["COOKIE", "login", "money", "page"]


async def page(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    viewer = await viewer_of(request, state)
    if viewer is None:
        return HTMLResponse(login_page(), status_code=401)
    writer: MeteringWriter | None = request.app.state.metering
    if writer is None:
        return HTMLResponse(message_page("Metering is disabled on this gateway."),
                            status_code=503)
    params = dict(request.query_params)
    csv_table = params.pop("table", None) if params.pop("format", None) == "csv" else None
    try:
        async with writer.store.report_connection() as conn:
            data = await load(conn, params, viewer.team, datetime.now(UTC).date(), csv_table)
    except ReportTimeout:
        return HTMLResponse(message_page(
            "The usage database is slow or busy; try a shorter period or again later."),
            status_code=503, headers={"retry-after": "10"})
    except (SQLAlchemyError, OSError):  # a bug elsewhere stays a bug (500), not "unavailable"
        return HTMLResponse(message_page("The usage database is unavailable."),
                            status_code=503)
    status = 400 if data.error else 200
    if csv_table is not None:
        table = data.table(csv_table)
        if table is None:
            data.error = f"table: no table named {csv_table[:40]!r}"
            return HTMLResponse(usage_page(data), status_code=400)
        name = f"usage-{table.name}-{data.period.first}-{data.period.last}.csv"
        return Response(to_csv(table), status_code=status, media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{name}"'})
    return HTMLResponse(usage_page(data), status_code=status)


async def login(request: Request) -> Response:
    """Checks the key from the form and sets the session cookie (never the key itself)."""
    state: GatewayState = request.app.state.gateway
    form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
    given = (form.get("key") or [""])[0]
    cookie = await cookie_for_key(given, request, state)
    if cookie is None:
        return HTMLResponse(login_page("That key may not open this page."), status_code=401)
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=COOKIE_SECONDS)
    return response
