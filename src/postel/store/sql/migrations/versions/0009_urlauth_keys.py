"""urlauth_keys: the per-mailbox access keys of URLAUTH (RFC 4467 3)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "urlauth_keys",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("access_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], ondelete="CASCADE",
            name=op.f("fk_urlauth_keys_mailbox_id_mailboxes"),
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_urlauth_keys")),
    )


def downgrade() -> None:
    op.drop_table("urlauth_keys")
