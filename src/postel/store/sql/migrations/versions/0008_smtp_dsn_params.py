"""smtp dsn params: DSN requests (RFC 3461 RET, ENVID, NOTIFY, ORCPT) and REQUIRETLS
(RFC 8689) on queue rows

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows queued before this carry no request: NULL means "not given" (RFC 3461 defaults).
    with op.batch_alter_table("outbound_queue") as batch:
        batch.add_column(sa.Column("dsn_ret", sa.String(length=4), nullable=True))
        batch.add_column(sa.Column("dsn_envid", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("dsn_recipients", sa.Text(), nullable=True))
        batch.add_column(sa.Column("requiretls", sa.Boolean(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbound_queue") as batch:
        batch.drop_column("requiretls")
        batch.drop_column("dsn_recipients")
        batch.drop_column("dsn_envid")
        batch.drop_column("dsn_ret")
