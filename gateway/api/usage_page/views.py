"""Folds query rows into what the page shows: cards, chart series and tables.

A table is data plus column kinds, so the HTML and the CSV export are two renderings of the
same value and cannot disagree. Nothing here touches the database or formats HTML.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from gateway.api.usage_page.period import Period
from gateway.api.usage_page.queries import NOT_ERRORS, SUMS
from gateway.metering.buckets import percentile

Kind = Literal["text", "int", "usd", "pct", "ms", "time", "budget"]
NO_KEY = "(master key)"
NO_TEAM = "(no team)"
NONE = "(none)"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str
    kind: Kind = "text"


@dataclass(slots=True)
class Table:
    name: str  # the id in the page and the `table=` of its CSV export
    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    note: str = ""
    csv_extra: tuple[str, ...] = ()  # raw fields only the CSV has (ids beside names)


@dataclass(slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    prompt_tokens: int = 0
    cache_hit_tokens: int = 0
    cost_usd: float = 0.0
    cache_savings_usd: float = 0.0

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cache_hit_tokens / self.prompt_tokens if self.prompt_tokens else None


@dataclass(slots=True)
class Series:
    """Spend per time point per series (a provider or a model), points in time order."""

    points: list[datetime | date]
    values: dict[str, list[float]]
    requests: dict[str, list[int]] = field(default_factory=dict)


def is_error(status: str) -> bool:
    return status not in NOT_ERRORS


def _fold(rows: Iterable[dict[str, Any]], by: str) -> dict[str, dict[str, float]]:
    """Sums per value of `by`, with `errors` counted from the status."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        group = out[row[by] if row[by] is not None else ""]
        for name in SUMS:
            group[name] += float(row.get(name) or 0)
        if "status" in row and is_error(row["status"]):
            group["errors"] += float(row["requests"] or 0)
        elif "errors" in row:
            group["errors"] += float(row["errors"] or 0)
    return out


def totals(traffic: list[dict[str, Any]]) -> Totals:
    t = Totals()
    for row in traffic:
        t.requests += int(row["requests"])
        if is_error(row["status"]):
            t.errors += int(row["requests"])
        t.prompt_tokens += int(row["prompt_tokens"])
        t.cache_hit_tokens += int(row["cache_hit_tokens"])
        t.tokens += int(row["prompt_tokens"]) + int(row["completion_tokens"])
        t.cost_usd += float(row["cost_usd"])
        t.cache_savings_usd += float(row["cache_savings_usd"])
    return t


def points(period: Period) -> list[datetime | date]:
    if period.hourly:
        return [period.start + timedelta(hours=h) for h in range(period.days * 24)]
    return [period.first + timedelta(days=d) for d in range(period.days)]


def series(rows: list[dict[str, Any]], by: str, period: Period, top: int = 7) -> Series:
    """Spend over time per provider or model (rows of queries.spend_over_time); beyond the
    `top` biggest, one "other" series. Series that spent nothing (a subscription provider,
    refusals) are left out."""
    axis = points(period)
    index = {point: i for i, point in enumerate(axis)}
    values: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(axis))
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(axis))
    for row in rows:
        i = index.get(row["bucket"])
        if i is None:
            continue
        name = row[by] or NONE
        values[name][i] += float(row["cost_usd"])
        counts[name][i] += int(row["requests"])
    ranked = sorted((name for name in values if sum(values[name]) > 0),
                    key=lambda name: (-sum(values[name]), name))  # spend: $0 series say nothing
    kept, rest = ranked[:top], ranked[top:]
    out = {name: values[name] for name in kept}
    requests = {name: counts[name] for name in kept}
    if rest:
        out["other"] = [sum(values[n][i] for n in rest) for i in range(len(axis))]
        requests["other"] = [sum(counts[n][i] for n in rest) for i in range(len(axis))]
    return Series(axis, out, requests)


def series_table(data: Series, by: str) -> Table:
    rows = [{"point": point, by: name, "requests": data.requests[name][i],
             "cost_usd": data.values[name][i]}
            for name in data.values for i, point in enumerate(data.points)
            if data.requests[name][i] or data.values[name][i]]
    return Table("series", f"Spend over time by {by}",
                 [Column("point", "Time (UTC)", "time"), Column(by, by.title()),
                  Column("requests", "Requests", "int"), Column("cost_usd", "Spend", "usd")],
                 rows)


def _share_rows(folded: dict[str, dict[str, float]], label: str,
                total_requests: float) -> list[dict[str, Any]]:
    rows = []
    for name, sums in sorted(folded.items(), key=lambda kv: -kv[1]["requests"]):
        requests = sums["requests"]
        rows.append({
            label: name or NONE,
            "requests": int(requests),
            "share": requests / total_requests if total_requests else None,
            "errors": int(sums["errors"]),
            "error_rate": sums["errors"] / requests if requests else None,
            "prompt_tokens": int(sums["prompt_tokens"]),
            "completion_tokens": int(sums["completion_tokens"]),
            "reasoning_tokens": int(sums["reasoning_tokens"]),
            "cost_usd": sums["cost_usd"],
            **{name: sums[name] for name in ("failovers", "book_cost_usd",
                                             "provider_cost_usd", "cache_savings_usd",
                                             "latency_ms_sum", "ttft_ms_sum", "ttft_count")},
        })
    return rows


_BREAKDOWN = [Column("requests", "Requests", "int"), Column("share", "Share", "pct"),
              Column("errors", "Errors", "int"), Column("prompt_tokens", "Prompt", "int"),
              Column("completion_tokens", "Completion", "int"),
              Column("reasoning_tokens", "Reasoning", "int"),
              Column("cost_usd", "Spend", "usd")]


def breakdown(traffic: list[dict[str, Any]], by: str, name: str, title: str) -> Table:
    """Requests, share, errors, tokens and spend per model, api or thinking mode."""
    total = sum(float(r["requests"]) for r in traffic)
    return Table(name, title, [Column(by, by.title()), *_BREAKDOWN],
                 _share_rows(_fold(traffic, by), by, total))


def providers(traffic: list[dict[str, Any]], latency: list[dict[str, Any]]) -> Table:
    """Who served the traffic: share, failovers, errors, latency and both costs. Percentiles
    come from the latency histograms (a viewer's: its team's own)."""
    served = [row for row in traffic if row["status"] != "refused"]
    total = sum(float(r["requests"]) for r in served)
    rows = _share_rows(_fold(served, "provider"), "provider", total)
    histograms: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for row in latency:
        histograms[(row["provider"] or NONE, row["metric"])][int(row["bucket"])] = \
            int(row["count"])
    for row in rows:
        name = row["provider"]
        for metric in ("latency", "ttft"):
            counts = histograms.get((name, metric), {})
            row[f"{metric}_p50"] = percentile(counts, 0.5)
            row[f"{metric}_p95"] = percentile(counts, 0.95)
        row["failovers"] = int(row["failovers"])
        reported = row["provider_cost_usd"] or None  # the rollup sums 0 where none reported
        row["provider_cost_usd"] = reported
        row["cost_gap_usd"] = reported - row["book_cost_usd"] if reported else None
    columns = [Column("provider", "Provider"), Column("requests", "Requests", "int"),
               Column("share", "Share", "pct"),
               Column("failovers", "Failed over to", "int"),
               Column("errors", "Errors", "int"), Column("error_rate", "Error rate", "pct"),
               Column("latency_p50", "Latency p50", "ms"), Column("latency_p95", "p95", "ms"),
               Column("ttft_p50", "TTFT p50", "ms"), Column("ttft_p95", "p95", "ms"),
               Column("cost_usd", "Billed", "usd"),
               Column("provider_cost_usd", "Reported", "usd"),
               Column("book_cost_usd", "Price book", "usd"),
               Column("cost_gap_usd", "Reported - book", "usd")]
    note = ("Failed over to: calls this provider took after an earlier one failed; (none): "
            "calls no provider served. Percentiles are bucket edges (about 12% wide). Billed: "
            "the provider's reported cost where it reports one, else the price book's.")
    return Table("providers", "Providers", columns, rows, note)


def _budget(spent: dict[str, float] | None, budget: float | None,
            period: str | None) -> dict[str, Any]:
    if budget is None:
        return {"budget_usd": None, "budget_period": None, "budget_spent": None,
                "budget_used": None}
    name = period or "month"
    used = (spent or {}).get(name, 0.0)
    return {"budget_usd": budget, "budget_period": name, "budget_spent": used,
            "budget_used": used / budget if budget else None}


def _period_spend(spend: list[dict[str, Any]], by: str) -> dict[str, dict[str, float]]:
    """Spend today and this month per team or key (from queries.spend_in_periods)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in spend:
        for name in ("day", "month"):
            out[row[by] or ""][name] += float(row[name])
    return out


_LIMITS = [Column("budget_used", "Budget (this period)", "budget"),
           Column("rpm", "RPM limit", "int"), Column("tpm", "TPM limit", "int")]


def teams(subjects: list[dict[str, Any]], team_rows: list[dict[str, Any]],
          spend: list[dict[str, Any]]) -> Table:
    """Per team: usage in the period, spend against its budget in the budget's own current
    period (UTC day or calendar month), its limits. Teams without usage are listed too."""
    folded = _fold(subjects, "team")
    period_spend = _period_spend(spend, "team")
    records = {row["name"]: row for row in team_rows}
    rows = []
    for name in sorted(set(folded) | set(records), key=lambda n: -folded.get(n, {}).get(
            "cost_usd", 0.0)):
        sums = folded.get(name, {})
        record = records.get(name, {})
        rows.append({"team": name or NO_TEAM, "requests": int(sums.get("requests", 0)),
                     "tokens": int(sums.get("prompt_tokens", 0)
                                   + sums.get("completion_tokens", 0)),
                     "errors": int(sums.get("errors", 0)),
                     "cost_usd": sums.get("cost_usd", 0.0),
                     **_budget(period_spend.get(name), record.get("budget_usd"),
                               record.get("budget_period")),
                     "rpm": record.get("rpm"), "tpm": record.get("tpm")})
    return Table("teams", "Teams", [Column("team", "Team"), Column("requests", "Requests", "int"),
                                    Column("tokens", "Tokens", "int"),
                                    Column("errors", "Errors", "int"),
                                    Column("cost_usd", "Spend", "usd"), *_LIMITS], rows)


def keys(subjects: list[dict[str, Any]], key_rows: list[dict[str, Any]],
         spend: list[dict[str, Any]]) -> Table:
    """Per key: usage in the period, budget progress, limits, when it was last used. Every
    key is listed, never-used ones included; calls without a key are the master key's."""
    folded = _fold(subjects, "key_id")
    period_spend = _period_spend(spend, "key_id")
    records = {row["id"]: row for row in key_rows}
    teams_of = {row["key_id"] or "": row["team"] or "" for row in subjects}
    rows = []
    for key_id in sorted(set(folded) | set(records), key=lambda k: (
            -folded.get(k, {}).get("cost_usd", 0.0), records.get(k, {}).get("name", k))):
        sums = folded.get(key_id, {})
        record = records.get(key_id, {})
        key_name = record.get("name")
        label = NO_KEY if key_id == "" else f"{key_name} ({key_id})" if key_name else key_id
        state = ("revoked" if record.get("revoked_at") else
                 "viewer (reads usage)" if record.get("role") == "viewer" else
                 "never used" if record and record.get("last_used") is None else "")
        rows.append({"key": label, "key_id": key_id,
                     "team": record.get("team") or teams_of.get(key_id) or NO_TEAM,
                     "requests": int(sums.get("requests", 0)),
                     "errors": int(sums.get("errors", 0)),
                     "cost_usd": sums.get("cost_usd", 0.0),
                     **_budget(period_spend.get(key_id), record.get("budget_usd"),
                               record.get("budget_period")),
                     "rpm": record.get("rpm"), "tpm": record.get("tpm"),
                     "last_used": record.get("last_used"), "state": state})
    return Table("keys", "Keys", [Column("key", "Key"), Column("team", "Team"),
                                  Column("requests", "Requests", "int"),
                                  Column("errors", "Errors", "int"),
                                  Column("cost_usd", "Spend", "usd"), *_LIMITS,
                                  Column("last_used", "Last used (hour)", "time"),
                                  Column("state", "State")], rows, csv_extra=("key_id",))


LOG_TABLE_COLUMNS = [Column("ts", "Time (UTC)", "time"), Column("request_id", "Request id"),
                     Column("key_id", "Key"), Column("team", "Team"), Column("model", "Model"),
                     Column("provider", "Provider"), Column("api", "API"),
                     Column("thinking", "Thinking"), Column("status", "Status"),
                     Column("error_type", "Error"), Column("attempts", "Attempts"),
                     Column("prompt_tokens", "Prompt", "int"),
                     Column("completion_tokens", "Completion", "int"),
                     Column("cost_usd", "Cost", "usd"), Column("latency_ms", "Latency", "ms"),
                     Column("ttft_ms", "TTFT", "ms")]


def log_table(rows: list[dict[str, Any]]) -> Table:
    return Table("log", "Request log", LOG_TABLE_COLUMNS, rows)


def attempts(value: str) -> list[tuple[str, str, bool]]:
    """`provider:outcome,...` (outcome: the upstream's HTTP status, or a failure kind such as
    `timeout`) as (provider, what happened, served), in the order they were tried."""
    out: list[tuple[str, str, bool]] = []
    for item in filter(None, (value or "").split(",")):
        provider, _, outcome = item.partition(":")
        served = outcome == "200"
        label = f"HTTP {outcome}" if outcome.isdigit() else outcome or "unknown"
        out.append((provider, f"{label} ({'served' if served else 'failed'})", served))
    return out
