"""mailbox counters: messages, unseen and bytes in the mailbox row, for STATUS

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("message_count", "unseen_count", "total_size")


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False,
                                       server_default="0"))
    # Counted once from the rows; from here on every write keeps them (rows.py).
    op.execute(
        "UPDATE mailboxes SET"
        " message_count = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id),"
        " unseen_count = (SELECT count(*) FROM messages m"
        "  WHERE m.mailbox_id = mailboxes.id AND NOT m.seen),"
        " total_size = (SELECT coalesce(sum(m.size), 0) FROM messages m"
        "  WHERE m.mailbox_id = mailboxes.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
