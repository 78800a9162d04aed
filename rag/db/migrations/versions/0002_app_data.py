"""Users, sessions, conversations and messages, feedback, audit, question bank, document registry.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created", sa.String(40), nullable=False, server_default=""),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_name", sa.String(64), nullable=False, index=True),
        sa.Column("created", TS, nullable=False),
        sa.Column("expires", TS, nullable=False),
        sa.Column("revoked", TS, nullable=True),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_name", sa.String(64), nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("source", sa.String(16), nullable=False, server_default="api"),
        sa.Column("created", TS, nullable=False),
        sa.Column("updated", TS, nullable=False, index=True),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("refused", sa.Boolean, nullable=True),
        sa.Column("citations", sa.JSON, nullable=True),
        sa.Column("index_version", sa.String(64), nullable=True),
        sa.Column("evidence", sa.Float, nullable=True),
        sa.Column("created", TS, nullable=False),
        sa.UniqueConstraint("conversation_id", "position"),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_name", sa.String(64), nullable=False, index=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="SET NULL"), nullable=True),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(16), nullable=True),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("question", sa.Text, nullable=False, server_default=""),
        sa.Column("answer", sa.Text, nullable=False, server_default=""),
        sa.Column("refused", sa.Boolean, nullable=True),
        sa.Column("files", sa.JSON, nullable=True),
        sa.Column("created", TS, nullable=False, index=True),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("line", sa.Integer, nullable=False, unique=True),
        sa.Column("time", sa.String(40), nullable=False, server_default=""),
        sa.Column("user_name", sa.String(64), nullable=False, server_default=""),
        sa.Column("action", sa.String(40), nullable=False, server_default=""),
        sa.Column("event", sa.JSON, nullable=False),
    )
    op.create_table(
        "question_bank",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("stem", sa.Text, nullable=False),
        sa.Column("item", sa.JSON, nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("sha256", sa.String(64), nullable=False, server_default=""),
        sa.Column("size", sa.Integer, nullable=True),
        sa.Column("added", sa.String(40), nullable=False, server_default=""),
        sa.Column("added_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("record", sa.JSON, nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for t in ("meta", "documents", "question_bank", "audit", "feedback", "messages", "conversations", "sessions", "users"):
        op.drop_table(t)
