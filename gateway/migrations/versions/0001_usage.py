"""usage: one row per finished request

Revision ID: 0001_usage
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_usage"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(64)),
        sa.Column("team", sa.String(128)),
        sa.Column("client_user", sa.String(256)),
        sa.Column("requested_model", sa.String(128), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64)),
        sa.Column("upstream_model", sa.String(128)),
        sa.Column("thinking", sa.String(32), nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_type", sa.String(64)),
        sa.Column("attempts", sa.Text, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("cache_hit_tokens", sa.Integer, nullable=False),
        sa.Column("cache_miss_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("provider_cost_usd", sa.Float),
        sa.Column("peak", sa.Boolean, nullable=False),
        sa.Column("estimated", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float),
    )
    op.create_index("ix_usage_ts", "usage", ["ts"])
    op.create_index("ix_usage_request_id", "usage", ["request_id"])
    op.create_index("ix_usage_key_ts", "usage", ["key_id", "ts"])
    op.create_index("ix_usage_team_ts", "usage", ["team", "ts"])
    op.create_index("ix_usage_model_ts", "usage", ["model", "ts"])
    op.create_index("ix_usage_provider_ts", "usage", ["provider", "ts"])


def downgrade() -> None:
    op.drop_table("usage")
