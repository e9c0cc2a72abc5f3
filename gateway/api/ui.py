"""`/ui`: the built-in usage page. Spend and tokens by team, key, model and day, for a period.

Rendered on the server as one HTML page with inline SVG charts: no JavaScript, no CDN (the
gateway may run where browsers cannot fetch assets), nothing to build. Every value shown is
escaped. Access: an admin (the master key; or, with no master key, a loopback client). A
browser cannot send a bearer header on navigation, so `/ui/login` takes the master key once and
sets an HttpOnly cookie holding an HMAC of it, never the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.admin import parse_time
from gateway.errors import GatewayError
from gateway.metering.writer import MeteringWriter
from gateway.state import GatewayState

COOKIE = "switchyard_ui"
_GROUPS = (("team", "Spend by team"), ("key", "Spend by key"), ("model", "Spend by model"))


def _cookie_value(master_key: str) -> str:
    return hmac.new(master_key.encode(), b"switchyard-ui-v1", hashlib.sha256).hexdigest()


async def _allowed(request: Request, state: GatewayState) -> bool:
    master = state.config.master_key.get_secret_value() if state.config.master_key else None
    cookie = request.cookies.get(COOKIE)
    if master and cookie and hmac.compare_digest(cookie, _cookie_value(master)):
        return True
    try:
        principal = await state.auth.authenticate_request(request)
    except GatewayError:
        return False
    return principal.is_admin


async def page(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    if not await _allowed(request, state):
        return HTMLResponse(_login_page(), status_code=401)
    writer: MeteringWriter | None = request.app.state.metering
    if writer is None:
        return HTMLResponse(_shell("Usage", "<p>Metering is disabled on this gateway.</p>"),
                            status_code=503)
    today = datetime.now(UTC).date()
    start = parse_time(request.query_params.get("from"), "from") or datetime.combine(
        today - timedelta(days=29), datetime.min.time(), UTC)
    end = parse_time(request.query_params.get("to"), "to") or datetime.combine(
        today + timedelta(days=1), datetime.min.time(), UTC)
    try:
        reports = {group: await writer.store.report(group, start, end)
                   for group in ("team", "key", "model", "day")}
        names = await _key_names(state)
    except Exception:
        return HTMLResponse(_shell("Usage", "<p>The usage database is unavailable.</p>"),
                            status_code=503)
    for row in reports["key"]:  # people know keys by name; the id stays for lookups
        key_id = row["key"]
        row["key"] = f"{names[key_id]} ({key_id})" if key_id in names else key_id
    return HTMLResponse(_usage_page(reports, start.date(), end.date()))


async def _key_names(state: GatewayState) -> dict[str, str]:
    if state.keys is None:
        return {}
    keys = await state.keys.list_keys(include_revoked=True)
    return {key.id: key.name for key in keys}


async def login(request: Request) -> Response:
    """Checks the master key from the form and sets the session cookie."""
    state: GatewayState = request.app.state.gateway
    master = state.config.master_key.get_secret_value() if state.config.master_key else None
    form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
    given = (form.get("key") or [""])[0]
    if not master or not hmac.compare_digest(given.encode(), master.encode()):
        return HTMLResponse(_login_page("That is not this gateway's master key."),
                            status_code=401)
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(COOKIE, _cookie_value(master), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=8 * 3600)
    return response


# ---- rendering ----------------------------------------------------------------------------


def _usage_page(reports: dict[str, list[dict[str, Any]]], start: date, end: date) -> str:
    days = reports["day"]
    total_cost = sum(r["cost_usd"] for r in days)
    total_requests = sum(r["requests"] for r in days)
    total_tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in days)
    errors = sum(r["errors"] for r in days)
    last_day = end - timedelta(days=1)
    body = [
        f"""<form class="period" method="get" action="/ui">
  <label>From <input type="date" name="from" value="{start.isoformat()}"></label>
  <label>To <input type="date" name="to" value="{end.isoformat()}"></label>
  <button type="submit">Show</button>
  <span class="muted">{start.isoformat()} to {last_day.isoformat()} (UTC)</span>
</form>""",
        '<div class="cards">',
        _card("Spend", money(total_cost), "spend-total"),
        _card("Requests", f"{total_requests:,}", "requests-total"),
        _card("Tokens", f"{total_tokens:,}", "tokens-total"),
        _card("Errors", f"{errors:,}", "errors-total"),
        "</div>",
        "<h2>Spend by day</h2>",
        _day_chart(days),
    ]
    for group, title in _GROUPS:
        body.append(f"<h2>{escape(title)}</h2>")
        body.append(_group_table(group, reports[group]))
    return _shell("Usage", "\n".join(body))


def money(usd: float) -> str:
    """Dollars at a precision that shows something: LLM calls often cost fractions of a cent."""
    if usd >= 1:
        return f"${usd:,.2f}"
    if usd >= 0.01:
        return f"${usd:.4f}"
    return f"${usd:.6f}"


def _card(label: str, value: str, ident: str) -> str:
    return (f'<div class="card"><div class="muted">{escape(label)}</div>'
            f'<div class="big" id="{ident}">{escape(value)}</div></div>')


def _group_table(group: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="muted">No usage in this period.</p>'
    rows = sorted(rows, key=lambda r: r["cost_usd"], reverse=True)
    top = max(r["cost_usd"] for r in rows) or 1.0
    lines = [f'<table id="by-{group}"><tr><th>{escape(group.title())}</th><th>Requests</th>'
             "<th>Prompt</th><th>Cache hit</th><th>Completion</th><th>Reasoning</th>"
             "<th>Spend</th><th></th></tr>"]
    for r in rows:
        name = r[group] if r[group] is not None else "(none)"
        width = 160 * r["cost_usd"] / top
        lines.append(
            f"<tr><td>{escape(str(name))}</td><td>{r['requests']:,}</td>"
            f"<td>{r['prompt_tokens']:,}</td><td>{r['cache_hit_tokens']:,}</td>"
            f"<td>{r['completion_tokens']:,}</td><td>{r['reasoning_tokens']:,}</td>"
            f"<td>{money(r['cost_usd'])}</td>"
            f'<td><svg width="160" height="12"><rect width="{width:.1f}" height="12" '
            f'rx="2"/></svg></td></tr>')
    lines.append("</table>")
    return "\n".join(lines)


def _day_chart(days: list[dict[str, Any]]) -> str:
    if not days:
        return '<p class="muted">No usage in this period.</p>'
    top = max(d["cost_usd"] for d in days) or 1.0
    bar, gap, height, pad = 28, 34, 140, 24
    width = 2 * pad + len(days) * (bar + gap)
    parts = [f'<svg id="day-chart" width="{width}" height="{height + 34}" role="img" '
             'aria-label="Spend by day">']
    for i, d in enumerate(days):
        h = height * d["cost_usd"] / top
        x = pad + i * (bar + gap)
        label = escape(str(d["day"])[5:])
        parts.append(
            f'<g><title>{escape(str(d["day"]))}: ${d["cost_usd"]:.4f}, '
            f'{d["requests"]} requests</title>'
            f'<rect x="{x}" y="{height - h:.1f}" width="{bar}" height="{h:.1f}" rx="2"/>'
            f'<text x="{x + bar / 2}" y="{height + 14}" text-anchor="middle">{label}</text>'
            f'<text x="{x + bar / 2}" y="{height + 28}" text-anchor="middle">'
            f'{escape(money(d["cost_usd"]))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _login_page(message: str = "") -> str:
    note = f'<p class="error">{escape(message)}</p>' if message else ""
    return _shell("Sign in", f"""{note}
<form method="post" action="/ui/login" class="login">
  <label>Master key <input type="password" name="key" autocomplete="current-password"></label>
  <button type="submit">Sign in</button>
</form>""")


def _shell(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard · {escape(title)}</title>
<style>
 body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #1d2433; }}
 h1 {{ font-size: 20px; margin: 0 0 16px; }} h2 {{ font-size: 16px; margin: 28px 0 8px; }}
 .muted {{ color: #6b7280; }} .error {{ color: #b91c1c; }}
 .cards {{ display: flex; gap: 12px; margin: 16px 0; }}
 .card {{ border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 16px; min-width: 140px; }}
 .big {{ font-size: 22px; font-weight: 600; }}
 table {{ border-collapse: collapse; }}
 th, td {{ padding: 4px 12px 4px 0; text-align: right; border-bottom: 1px solid #f0f1f3; }}
 th:first-child, td:first-child {{ text-align: left; }}
 rect {{ fill: #2563eb; }} text {{ font-size: 10px; fill: #6b7280; }}
 form.period label {{ margin-right: 8px; }}
</style></head>
<body><h1>Switchyard · {escape(title)}</h1>
{body}
</body></html>"""
