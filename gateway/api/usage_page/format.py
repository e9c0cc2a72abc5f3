"""How values read on the page: money at a precision that shows something, counts with
separators, rates as percentages, and "—" for what is not known."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

DASH = "—"


def money(usd: float) -> str:
    """Dollars: LLM calls often cost fractions of a cent, so small sums keep more digits."""
    if usd == 0:
        return "$0"
    if usd >= 1:
        return f"${usd:,.2f}"
    if usd >= 0.01:
        return f"${usd:.4f}"
    return f"${usd:.6f}"


def tick_money(usd: float, step: float) -> str:
    """An axis tick: as many decimals as the step between ticks needs, no exponent."""
    if usd == 0:
        return "$0"
    decimals = max(0, -math.floor(math.log10(step)) + (0 if step >= 1 else 1)) if step > 0 else 2
    return f"${usd:,.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"${usd:,.0f}"


def duration(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def cell(value: Any, kind: str) -> str:
    """A value as text for a table cell of that kind (plain text; the caller escapes)."""
    if value is None or value == "":
        return DASH
    if kind == "int":
        return f"{int(value):,}"
    if kind == "usd":
        return money(float(value)) if value >= 0 else "-" + money(-float(value))
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "ms":
        return duration(float(value))
    if kind == "time":
        if isinstance(value, datetime):
            return f"{value:%Y-%m-%d %H:%M:%S}"
        if isinstance(value, date):
            return value.isoformat()
    return str(value)


def csv_value(value: Any) -> str:
    """Raw values for spreadsheets: full precision, ISO times, empty for none."""
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)
