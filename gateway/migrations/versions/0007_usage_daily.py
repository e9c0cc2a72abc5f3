"""usage_daily: the hourly rollups summed per UTC day, backfilled from usage_hourly

Revision ID: 0007_usage_daily
Revises: 0006_usage_rollups
Create Date: 2026-12-07

Measured at 20M raw rows (bench/RESULTS-usage-scale.md): a 90-day report over usage_hourly
reads ~550k rows and takes most of a second on two cores; per day it reads ~24 times fewer.
Every column is a plain sum of usage_hourly's, so the backfill is one GROUP BY here (no price
book needed, unlike the rollups of the raw rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007_usage_daily"
down_revision: str | None = "0006_usage_rollups"
branch_labels: str | None = None
depends_on: str | None = None

_DIMENSIONS = (
    ("key_id", 64), ("team", 128), ("model", 64), ("provider", 64),
    ("api", 32), ("thinking", 32), ("status", 20),
)
_COUNTS = (
    "requests", "failovers", "prompt_tokens", "cache_hit_tokens", "cache_miss_tokens",
    "completion_tokens", "reasoning_tokens", "ttft_count",
)
_SUMS = (
    "cost_usd", "book_cost_usd", "provider_cost_usd", "cache_savings_usd",
    "latency_ms_sum", "ttft_ms_sum",
)


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Date, primary_key=True),
        *(sa.Column(name, sa.String(size), primary_key=True, server_default="")
          for name, size in _DIMENSIONS),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _COUNTS),
        *(sa.Column(name, sa.Float, nullable=False, server_default="0") for name in _SUMS),
    )
    op.create_index("ix_usage_daily_team_day", "usage_daily", ["team", "day"])
    op.create_index("ix_usage_daily_key_day", "usage_daily", ["key_id", "day"])
    day = ("CAST(timezone('UTC', hour) AS date)" if op.get_bind().dialect.name == "postgresql"
           else "date(hour)")
    dimensions = ", ".join(name for name, _ in _DIMENSIONS)
    sums = ", ".join(f"sum({name})" for name in _COUNTS + _SUMS)
    op.execute(
        f"INSERT INTO usage_daily (day, {dimensions}, {', '.join(_COUNTS + _SUMS)}) "
        f"SELECT {day}, {dimensions}, {sums} FROM usage_hourly GROUP BY {day}, {dimensions}")


def downgrade() -> None:
    op.drop_index("ix_usage_daily_key_day", table_name="usage_daily")
    op.drop_index("ix_usage_daily_team_day", table_name="usage_daily")
    op.drop_table("usage_daily")
