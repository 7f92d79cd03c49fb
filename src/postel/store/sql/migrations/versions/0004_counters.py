"""counters: a stored UIDVALIDITY counter

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    # Start above every UIDVALIDITY already handed out.
    op.execute(
        "INSERT INTO counters (name, value) "
        "SELECT 'uidvalidity', COALESCE(MAX(uidvalidity), 0) FROM mailboxes"
    )


def downgrade() -> None:
    op.drop_table("counters")
