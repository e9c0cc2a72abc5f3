"""Any table of the page as CSV (`/ui?format=csv&table=<name>` with the page's own filters):
raw values at full precision, for spreadsheets."""

from __future__ import annotations

import csv
import io

from gateway.api.usage_page.format import csv_value
from gateway.api.usage_page.views import Table

BUDGET_COLUMNS = ("budget_usd", "budget_period", "budget_spent", "budget_used")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_csv(table: Table) -> str:
    """Header row, then one row per table row. A budget column becomes its four values. Text
    that a spreadsheet would run as a formula (a key named `=cmd|...`) is quoted with `'`."""
    headers: list[str] = []
    for column in table.columns:
        headers.extend(BUDGET_COLUMNS if column.kind == "budget" else (column.key,))
    headers.extend(table.csv_extra)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    for row in table.rows:
        cells = []
        for name in headers:
            value = csv_value(row.get(name))
            if value.startswith(_FORMULA_START) and not _number(value):
                value = "'" + value
            cells.append(value)
        writer.writerow(cells)
    return out.getvalue()


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
