"""usage.api: which client API served the call

Revision ID: 0003_usage_api
Revises: 0002_keys
Create Date: 2026-12-08

Every row stored before this revision was an OpenAI Chat call, so the server default fills
them with 'openai.chat' (on Postgres 11+ adding a column with a constant default is a catalog
change, not a table rewrite). No index: `api` has a handful of values and per-api reports scan
a time range, which ix_usage_ts already serves; one more index would tax every insert.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_usage_api"
down_revision: str | None = "0002_keys"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "usage",
        sa.Column("api", sa.String(32), nullable=False, server_default="openai.chat"),
    )


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("api")
