"""The audit trail lives in the database: ``audit.line`` (the line of a migrated ``audit.jsonl``)
is empty for the events appended since.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.alter_column("line", existing_type=sa.Integer, nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.alter_column("line", existing_type=sa.Integer, nullable=False)
