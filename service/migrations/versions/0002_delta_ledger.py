"""delta tracked per dataset and per ledger entry

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:30:00

A dataset's ``delta`` is its delta budget; ``delta_spent`` sums the deltas of its
charges (basic composition), as ``epsilon_spent`` sums epsilons. Entries written before
this revision charged a job's delta, which was the dataset's: it is filled in so.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("delta_spent", sa.Float(), nullable=False, server_default="0"))
    with op.batch_alter_table("ledger") as batch:
        batch.add_column(sa.Column("delta", sa.Float(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE ledger SET delta = (SELECT datasets.delta FROM datasets "
        "WHERE datasets.id = ledger.dataset_id) * (CASE WHEN epsilon < 0 THEN -1 ELSE 1 END)"
    )
    op.execute(
        "UPDATE datasets SET delta_spent = COALESCE((SELECT SUM(ledger.delta) FROM ledger "
        "WHERE ledger.dataset_id = datasets.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("delta")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("delta_spent")
