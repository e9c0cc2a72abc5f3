"""usage_hourly and usage_latency_hourly: hourly rollups of usage; api_keys.role

Revision ID: 0006_usage_rollups
Revises: 0005_usage_book_cost
Create Date: 2026-12-07

Reports over months of raw rows (tens of millions) cannot be answered in a page load, so every
report reads hourly rollups instead; the raw `usage` table is the request log and is pruned
after a retention period while the rollups are kept. Dimension columns are NOT NULL with ""
for "none" (a refused call's provider, the master key's key_id) so that they can form the
primary key an idempotent upsert needs. Latency and time to first token are kept as log-scale
bucket counts (gateway/metering/buckets.py) so that percentiles can be read from them.
`api_keys.role`: "user" keys call models; "viewer" keys only read their team's usage.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_usage_rollups"
down_revision: str | None = "0005_usage_book_cost"
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
        "usage_hourly",
        sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
        *(sa.Column(name, sa.String(size), primary_key=True, server_default="")
          for name, size in _DIMENSIONS),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _COUNTS),
        *(sa.Column(name, sa.Float, nullable=False, server_default="0") for name in _SUMS),
    )
    op.create_index("ix_usage_hourly_team_hour", "usage_hourly", ["team", "hour"])
    op.create_index("ix_usage_hourly_key_hour", "usage_hourly", ["key_id", "hour"])
    op.create_table(
        "usage_latency_hourly",
        sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True, server_default=""),
        sa.Column("model", sa.String(64), primary_key=True, server_default=""),
        sa.Column("api", sa.String(32), primary_key=True, server_default=""),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.add_column(
        "api_keys", sa.Column("role", sa.String(16), nullable=False, server_default="user"))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("role")
    op.drop_table("usage_latency_hourly")
    op.drop_index("ix_usage_hourly_key_hour", table_name="usage_hourly")
    op.drop_index("ix_usage_hourly_team_hour", table_name="usage_hourly")
    op.drop_table("usage_hourly")
