"""responses: stored responses of the OpenAI Responses surface

Revision ID: 0004_responses
Revises: 0003_usage_api
Create Date: 2026-12-09

One row per response made with `store: true` (gateway/surfaces/openai_responses/store.py).
Lookups are by primary key plus the owning key, so the only index is the expiry one that
pruning scans.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_responses"
down_revision: str | None = "0003_usage_api"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("input_items", sa.JSON, nullable=False),
        sa.Column("history", sa.JSON, nullable=False),
    )
    op.create_index("ix_responses_expires_at", "responses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_expires_at", table_name="responses")
    op.drop_table("responses")
