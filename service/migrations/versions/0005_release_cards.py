"""release cards named by their owners; ledger entries with their actor and data
version; API keys with a label

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 02:40:00

A release made before this revision shows its dataset's name and version instead.
Ledger entries gain ``actor`` (the API key, ``scheduler`` or ``system``) and
``version_id`` (the dataset version the job trained on); older entries leave them null.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("label", sa.String(200), nullable=True))
    with op.batch_alter_table("ledger") as batch:
        batch.add_column(sa.Column("actor", sa.String(32), nullable=True))
        batch.add_column(sa.Column("version_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("label")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("version_id")
        batch.drop_column("actor")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("description")
        batch.drop_column("name")
