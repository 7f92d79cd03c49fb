"""webmail: message text for full-text search, preferences, trusted senders, list indexes

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03

The search index differs per backend and is not part of schema.py (Alembic does not
reflect it): SQLite gets an FTS5 table over webmail_text (external content, kept in step
by triggers, so an expunge that cascades to webmail_text also leaves the index); PostgreSQL
gets a GIN index over to_tsvector('simple', ...) of the same columns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE webmail_fts USING fts5(subject, from_text, to_text, body, "
    "content='webmail_text', content_rowid='message_id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER webmail_text_ai AFTER INSERT ON webmail_text BEGIN "
    "INSERT INTO webmail_fts(rowid, subject, from_text, to_text, body) "
    "VALUES (new.message_id, new.subject, new.from_text, new.to_text, new.body); END",
    "CREATE TRIGGER webmail_text_ad AFTER DELETE ON webmail_text BEGIN "
    "INSERT INTO webmail_fts(webmail_fts, rowid, subject, from_text, to_text, body) "
    "VALUES ('delete', old.message_id, old.subject, old.from_text, old.to_text, old.body); END",
]


def upgrade() -> None:
    op.create_table(
        "webmail_text",
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subject", sa.Text(), server_default="", nullable=False),
        sa.Column("from_text", sa.Text(), server_default="", nullable=False),
        sa.Column("to_text", sa.Text(), server_default="", nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name=op.f("fk_webmail_text_message_id_messages"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_webmail_text")),
    )
    op.create_table(
        "webmail_prefs",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.Text(), server_default="", nullable=False),
        sa.Column("mark_read_on_open", sa.Boolean(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_webmail_prefs_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_webmail_prefs")),
    )
    op.create_table(
        "webmail_trusted_senders",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_webmail_trusted_senders_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "sender", name=op.f("pk_webmail_trusted_senders")),
    )
    op.create_index("ix_messages_webmail_date", "messages", ["mailbox_id", "internal_date", "id"])
    op.create_index("ix_messages_webmail_size", "messages", ["mailbox_id", "size", "id"])
    op.create_index("ix_messages_webmail_seen", "messages", ["mailbox_id", "seen"])
    # Prefixes of the sort keys (see schema.py); the list query orders by the same expressions.
    op.create_index("ix_messages_webmail_from", "messages", ["mailbox_id", sa.text("substr(from_sort, 1, 100)"), "id"])
    op.create_index("ix_messages_webmail_subject", "messages", ["mailbox_id", sa.text("substr(base_subject, 1, 100)"), "id"])
    op.create_index("ix_messages_webmail_message_id", "messages", [sa.text("substr(message_id, 1, 200)")])
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        text = sa.table("webmail_text", *(sa.column(name, sa.Text()) for name in
                                         ("subject", "from_text", "to_text", "body"))).c
        document = sa.func.to_tsvector(
            sa.literal_column("'simple'::regconfig"),
            text.subject + " " + text.from_text + " " + text.to_text + " " + text.body,
        )
        op.create_index("ix_webmail_text_document", "webmail_text", [document],
                        postgresql_using="gin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE webmail_fts")
    else:
        op.drop_index("ix_webmail_text_document", table_name="webmail_text")
    for name in ("message_id", "subject", "from", "seen", "size", "date"):
        op.drop_index(f"ix_messages_webmail_{name}", table_name="messages")
    op.drop_table("webmail_trusted_senders")
    op.drop_table("webmail_prefs")
    op.drop_table("webmail_text")
