"""metadata_entries: IMAP METADATA (RFC 5464) on mailboxes and the server

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metadata_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name=op.f("fk_metadata_entries_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"],
            name=op.f("fk_metadata_entries_mailbox_id_mailboxes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadata_entries")),
    )
    op.create_index(
        "ix_metadata_entries_account_id_mailbox_id_name", "metadata_entries",
        ["account_id", "mailbox_id", "name"],
    )
    op.create_index("ix_metadata_entries_mailbox_id", "metadata_entries", ["mailbox_id"])


def downgrade() -> None:
    op.drop_index("ix_metadata_entries_mailbox_id", table_name="metadata_entries")
    op.drop_index("ix_metadata_entries_account_id_mailbox_id_name", table_name="metadata_entries")
    op.drop_table("metadata_entries")
