"""outbound_queue.claimed_by, claimed_until: claims with leases, so several hosts share the
queue and a dead host's claims are taken over

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows "sending" now have no owner: every host's next start releases them, as before.
    with op.batch_alter_table("outbound_queue") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_queue") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
