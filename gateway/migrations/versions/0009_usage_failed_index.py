"""ix_usage_failed_ts: the failed calls (status not "ok") by time, for the request log

Revision ID: 0009_usage_failed_index
Revises: 0008_usage_latency_daily
Create Date: 2026-12-07

The usage page's request log filtered by status ("error", "refused") had no index but `ts`:
at 20M raw rows, status=error with a model and a provider scanned 2M rows of the newest 30
days for 50 matches (0.8 s, bench/RESULTS-usage-scale.md). A partial index holds only the
failed calls (~3% of rows), so such a filter scans those; it costs the writer one index entry
per failed call, none per successful one. Building it reads the table once (~1 min at 20M rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009_usage_failed_index"
down_revision: str | None = "0008_usage_latency_daily"
branch_labels: str | None = None
depends_on: str | None = None

FAILED = "status <> 'ok'"


def upgrade() -> None:
    op.create_index("ix_usage_failed_ts", "usage", ["ts"], postgresql_where=sa.text(FAILED),
                    sqlite_where=sa.text(FAILED))


def downgrade() -> None:
    op.drop_index("ix_usage_failed_ts", table_name="usage")
