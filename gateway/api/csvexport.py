"""CSV downloads of report rows (`format=csv` on /admin/usage; the /ui tables link to it)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A header line and one line per row; `columns` default to the first row's keys. Cells
    starting with = + - @ are prefixed with ' so a spreadsheet never runs them as formulas
    (key and team names are user-chosen)."""
    names = list(columns if columns is not None else (rows[0].keys() if rows else []))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in names])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def csv_response(rows: Sequence[dict[str, Any]], filename: str,
                 columns: Sequence[str] | None = None) -> Response:
    return Response(to_csv(rows, columns), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})
