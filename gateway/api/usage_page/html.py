"""The page's HTML: the period picker, cards, the chart, the tables and the request log.

Everything shown is escaped; links carry the page's query string so that the period, the
chart's dimension and the log's filters survive every click. No script, no asset to fetch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from gateway.api.usage_page.chart import spend_chart
from gateway.api.usage_page.format import DASH, cell, money
from gateway.api.usage_page.period import QUICK_RANGES, Period
from gateway.api.usage_page.views import Series, Table, Totals, attempts, series_table

LOG_FILTERS = (("key", "Key id"), ("team", "Team"), ("model", "Model"),
               ("provider", "Provider"), ("status", "Status"), ("request_id", "Request id"))
PERIOD_PARAMS = ("range", "from", "to", "by")


@dataclass(slots=True)
class PageData:
    """Everything one page (or one of its CSV tables) shows; built by load.py."""

    period: Period
    by: str
    totals: Totals
    series: Series
    tables: list[Table]
    log: Table
    older: str | None  # the cursor of the next log page, if there is one
    params: Mapping[str, str]
    viewer_team: str | None
    error: str | None = None

    def table(self, name: str) -> Table | None:
        """Any table by its name, the chart's data and the log included (CSV export)."""
        if name == "series":
            return series_table(self.series, self.by)
        if name == "log":
            return self.log
        return next((t for t in self.tables if t.name == name), None)


def link(params: Mapping[str, str], **changes: str | None) -> str:
    """This page's URL with `params` changed (a None or "" value drops the parameter)."""
    merged = {k: v for k, v in params.items() if v}
    for name, value in changes.items():
        if value:
            merged[name] = value
        else:
            merged.pop(name, None)
    return "/ui?" + urlencode(merged) if merged else "/ui"


def usage_page(data: PageData) -> str:
    who = (f'<p class="muted" id="scope">Team <b>{escape(data.viewer_team)}</b> (read-only '
           "view)</p>") if data.viewer_team is not None else ""
    error = f'<p class="error" id="error">{escape(data.error)}</p>' if data.error else ""
    body = [who, error, _picker(data), _cards(data.totals), _chart(data)]
    for table in data.tables:
        body.append(_table_section(table, data.params))
    body.append(_log(data))
    return shell("Usage", "\n".join(body))


def _picker(data: PageData) -> str:
    period, params = data.period, data.params
    keep = {"by": params.get("by", "")}
    quick = " ".join(
        f'<a class="quick{" on" if period.quick == name else ""}" data-range="{name}" '
        f'href="{escape(link(keep, range=name))}">{escape(label)}</a>'
        for name, label in QUICK_RANGES.items())
    hidden = (f'<input type="hidden" name="by" value="{escape(data.by)}">'
              if params.get("by") else "")
    return f"""<form class="period" method="get" action="/ui">
  <span class="quicks">{quick}</span>
  <label>From <input type="date" name="from" value="{period.first.isoformat()}"></label>
  <label>To <input type="date" name="to" value="{period.last.isoformat()}"></label>{hidden}
  <button type="submit">Show</button>
  <span class="muted" id="period">{period.first.isoformat()} to {period.last.isoformat()}
  (UTC, both days included)</span>
</form>"""


def _cards(t: Totals) -> str:
    error_rate = f"{100 * t.errors / t.requests:.1f}% of requests" if t.requests else ""
    hit_rate = (f"{100 * t.cache_hit_rate:.1f}% of prompt tokens hit the cache"
                if t.cache_hit_rate is not None else "")
    return "".join([
        '<div class="cards">',
        _card("Spend", money(t.cost_usd), "spend-total"),
        _card("Requests", f"{t.requests:,}", "requests-total"),
        _card("Tokens", f"{t.tokens:,}", "tokens-total", "prompt + completion"),
        _card("Errors", f"{t.errors:,}", "errors-total", error_rate),
        _card("Cache savings", money(t.cache_savings_usd), "cache-savings", hit_rate),
        "</div>"])


def _card(label: str, value: str, ident: str, sub: str = "") -> str:
    note = f'<div class="muted small">{escape(sub)}</div>' if sub else ""
    return (f'<div class="card"><div class="muted">{escape(label)}</div>'
            f'<div class="big" id="{ident}">{escape(value)}</div>{note}</div>')


def _chart(data: PageData) -> str:
    switch = " ".join(
        f'<a class="switch{" on" if data.by == by else ""}" data-by="{by}" '
        f'href="{escape(link(data.params, by=by, before=None))}">by {by}</a>'
        for by in ("provider", "model"))
    step = "hour" if data.period.hourly else "day"
    csv = escape(link(data.params, format="csv", table="series", before=None))
    return (f'<h2>Spend over time <span class="switches">{switch}</span> '
            f'<a class="csv" href="{csv}">CSV</a></h2>'
            f'<p class="muted small">Per {step}, UTC; hover a bar for its value.</p>'
            + spend_chart(data.series, data.by, data.period.hourly))


def _table_section(table: Table, params: Mapping[str, str]) -> str:
    csv = escape(link(params, format="csv", table=table.name, before=None))
    note = f'<p class="muted small">{escape(table.note)}</p>' if table.note else ""
    return (f'<h2>{escape(table.title)} <a class="csv" href="{csv}">CSV</a></h2>{note}'
            + html_table(table))


def html_table(table: Table) -> str:
    if not table.rows:
        return f'<p class="muted" id="{table.name}-empty">Nothing in this period.</p>'
    head = "".join(f"<th>{escape(c.header)}</th>" for c in table.columns)
    lines = [f'<div class="scroll"><table id="{table.name}"><thead><tr>{head}</tr></thead>'
             "<tbody>"]
    for row in table.rows:
        cells = "".join(_cell(row, c.key, c.kind) for c in table.columns)
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _cell(row: dict[str, Any], key: str, kind: str) -> str:
    if kind == "budget":
        return f"<td>{_budget(row)}</td>"
    return f'<td data-col="{key}">{escape(cell(row.get(key), kind))}</td>'


def _budget(row: dict[str, Any]) -> str:
    budget = row.get("budget_usd")
    if budget is None:
        return DASH
    used = row.get("budget_used") or 0.0
    width = min(100.0, 100 * used)
    level = "over" if used >= 1 else "high" if used >= 0.8 else "ok"
    text = f"{money(row['budget_spent'])} / {money(budget)} a {row['budget_period']}"
    return (f'<span class="budget {level}" title="{escape(f"{100 * used:.1f}% used")}">'
            f'<span class="bar"><span style="width:{width:.1f}%"></span></span> '
            f"{escape(text)}</span>")


def _log(data: PageData) -> str:
    params = data.params
    fields = []
    for name, label in LOG_FILTERS:
        if name == "team" and data.viewer_team is not None:
            continue
        fields.append(f'<label>{escape(label)} <input name="{name}" size="12" '
                      f'value="{escape(params.get(name, ""))}"></label>')
    hidden = "".join(f'<input type="hidden" name="{n}" value="{escape(params[n])}">'
                     for n in PERIOD_PARAMS if params.get(n))
    csv = escape(link(params, format="csv", table="log", before=None))
    out = [f'<h2 id="log-title">Request log <a class="csv" href="{csv}">CSV</a></h2>',
           '<p class="muted small">Newest first, in the period (a request id is searched in '
           "every retained row). Open a call's attempts to see which providers were tried "
           "and why they failed.</p>",
           f'<form class="filters" id="log-filters" method="get" action="/ui">{hidden}'
           f'{"".join(fields)}<button type="submit">Filter</button> '
           f'<a href="{escape(link({n: params.get(n, "") for n in PERIOD_PARAMS}))}">'
           "clear</a></form>"]
    if not data.log.rows:
        out.append('<p class="muted" id="log-empty">No calls match.</p>')
        return "\n".join(out)
    head = "".join(f"<th>{escape(c.header)}</th>" for c in data.log.columns)
    out.append(f'<div class="scroll"><table id="log"><thead><tr>{head}</tr></thead><tbody>')
    for row in data.log.rows:
        cells = []
        for column in data.log.columns:
            if column.key == "attempts":
                cells.append(f'<td class="attempts">{_attempts(row)}</td>')
            else:
                cells.append(_cell(row, column.key, column.kind))
        out.append(f'<tr data-id="{escape(row["id"])}">{"".join(cells)}</tr>')
    out.append("</tbody></table></div>")
    pages = [f'<a href="{escape(link(params, before=None))}">newest</a>']
    if data.older:
        pages.append(f'<a id="log-older" href="{escape(link(params, before=data.older))}">'
                     "older &rarr;</a>")
    out.append(f'<p class="pages">{" ".join(pages)}</p>')
    return "\n".join(out)


def _attempts(row: dict[str, Any]) -> str:
    tried = attempts(row.get("attempts") or "")
    if not tried:
        return DASH
    summary = f"{len(tried)} tried" if len(tried) > 1 else f"{tried[0][0]}"
    items = "".join(
        f'<li class="{"ok" if served else "failed"}">{escape(provider)}: {escape(what)}</li>'
        for provider, what, served in tried)
    return f"<details><summary>{escape(summary)}</summary><ol>{items}</ol></details>"


def login_page(message: str = "") -> str:
    note = f'<p class="error">{escape(message)}</p>' if message else ""
    return shell("Sign in", f"""{note}
<form method="post" action="/ui/login" class="login">
  <label>Master key or dashboard key
  <input type="password" name="key" autocomplete="current-password"></label>
  <button type="submit">Sign in</button>
</form>""")


def message_page(text: str) -> str:
    return shell("Usage", f"<p>{escape(text)}</p>")


def shell(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard · {escape(title)}</title>
<style>{_STYLE}</style></head>
<body><h1>Switchyard · {escape(title)}</h1>
{body}
</body></html>"""


_STYLE = """
 body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #1d2433; }
 h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 28px 0 6px; }
 a { color: #1d4ed8; text-decoration: none; } a:hover { text-decoration: underline; }
 .muted { color: #6b7280; } .small { font-size: 12px; margin: 2px 0 8px; }
 .error { color: #b91c1c; background: #fef2f2; border: 1px solid #fecaca; padding: 6px 10px;
          border-radius: 6px; }
 .cards { display: flex; gap: 12px; margin: 16px 0; flex-wrap: wrap; }
 .card { border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 16px; min-width: 150px; }
 .big { font-size: 22px; font-weight: 600; }
 form.period, form.filters { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
 a.quick, a.switch { border: 1px solid #d1d5db; border-radius: 6px; padding: 2px 8px;
                     font-size: 13px; font-weight: normal; }
 a.on { background: #1d4ed8; color: white; border-color: #1d4ed8; }
 a.csv { font-size: 12px; font-weight: normal; margin-left: 8px; }
 table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
 th, td { padding: 4px 10px 4px 0; text-align: right; border-bottom: 1px solid #f0f1f3;
          vertical-align: top; white-space: nowrap; }
 th { font-weight: 600; font-size: 12px; color: #374151; }
 th:first-child, td:first-child { text-align: left; }
 .scroll { overflow-x: auto; max-width: 100%; }
 svg.chart { max-width: 100%; height: auto; }
 svg.chart text { font-size: 11px; fill: #4b5563; }
 svg.chart .grid { stroke: #eef0f3; } svg.chart .axis { stroke: #9ca3af; }
 svg.chart .hit { fill: transparent; } svg.chart .point:hover .hit { fill: #f3f4f6; }
 svg.chart .seg:hover { opacity: .7; }
 .budget .bar { display: inline-block; width: 80px; height: 8px; background: #eef0f3;
                border-radius: 4px; vertical-align: middle; overflow: hidden; }
 .budget .bar span { display: block; height: 100%; background: #10b981; }
 .budget.high .bar span { background: #f59e0b; } .budget.over .bar span { background: #ef4444; }
 td.attempts { text-align: left; } details summary { cursor: pointer; color: #1d4ed8; }
 details ol { margin: 4px 0; padding-left: 18px; } li.failed { color: #b91c1c; }
 li.ok { color: #047857; }
 #log td { font-size: 12px; }
"""
