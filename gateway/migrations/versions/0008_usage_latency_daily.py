"""usage_latency_daily: the latency histograms summed per UTC day, backfilled from the hourly

Revision ID: 0008_usage_latency_daily
Revises: 0007_usage_daily
Create Date: 2026-12-07

At 20M raw rows over 90 days usage_latency_hourly holds 1.5M rows (bench/RESULTS-usage-scale.md)
and was most of a 90-day usage page; per day it is ~24 times fewer. Counts are plain sums, so
the backfill is one GROUP BY.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008_usage_latency_daily"
down_revision: str | None = "0007_usage_daily"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "usage_latency_daily",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True, server_default=""),
        sa.Column("model", sa.String(64), primary_key=True, server_default=""),
        sa.Column("api", sa.String(32), primary_key=True, server_default=""),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    )
    day = ("CAST(timezone('UTC', hour) AS date)" if op.get_bind().dialect.name == "postgresql"
           else "date(hour)")
    op.execute(
        "INSERT INTO usage_latency_daily (day, provider, model, api, metric, bucket, count) "
        f"SELECT {day}, provider, model, api, metric, bucket, sum(count) "
        f"FROM usage_latency_hourly GROUP BY {day}, provider, model, api, metric, bucket")


def downgrade() -> None:
    op.drop_table("usage_latency_daily")
