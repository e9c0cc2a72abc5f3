"""usage.book_cost_usd: the price book's figure beside the billed cost

Revision ID: 0005_usage_book_cost
Revises: 0004_responses
Create Date: 2026-12-01

Where a provider reports what it billed (OpenRouter's `usage.cost`), that is the row's
`cost_usd`; the price book's figure for the same tokens is kept here so the two can be compared.
Nullable, no default: older rows have no book figure, and adding a nullable column is a catalog
change on Postgres, not a table rewrite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_usage_book_cost"
down_revision: str | None = "0004_responses"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("usage", sa.Column("book_cost_usd", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("book_cost_usd")
