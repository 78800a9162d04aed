"""The question bank lives in the database: ``question_bank`` keeps the bank's order (``seq``); an
item id may repeat, as it could in ``question_bank.json``.

The table held only a start-up copy of ``question_bank.json`` (still the live store then): it is
rebuilt empty, and the one-time import (``rag.db.importer``) fills it from the file.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("question_bank")
    op.create_table(
        "question_bank",
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(64), nullable=False, index=True),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("stem", sa.Text, nullable=False),
        sa.Column("item", sa.JSON, nullable=False),
    )
    op.execute("DELETE FROM meta WHERE key IN ('json_migrated:question_bank.json', 'question_bank:lock')")
    op.execute("INSERT INTO meta (key, value) VALUES ('question_bank:lock', '-')")  # what every bank write updates first


def downgrade() -> None:
    op.drop_table("question_bank")
    op.create_table(
        "question_bank",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("stem", sa.Text, nullable=False),
        sa.Column("item", sa.JSON, nullable=False),
    )
