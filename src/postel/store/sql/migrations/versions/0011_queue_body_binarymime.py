"""queue body binarymime: BODY=BINARYMIME (RFC 3030 3) on queue rows

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows queued before this were never binary: BINARYMIME was refused at MAIL.
    with op.batch_alter_table("outbound_queue") as batch:
        batch.add_column(sa.Column("body_binary", sa.Boolean(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbound_queue") as batch:
        batch.drop_column("body_binary")
