"""lifecycle: schedules paused and deleted, releases withdrawn, datasets erased

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 02:00:00

``schedules.state`` (active, paused, deleted: a deleted schedule keeps its rows, so its
runs stay on the record), ``state_reason`` and ``fires_after`` (a resumed or re-timed
schedule fires only after it: what fell due while paused is not made up);
``releases.withdrawn_at`` and ``withdrawn_reason`` (consumers then get 410 with the
reason); ``datasets.data_key`` (the dataset's own data key,
wrapped by the server key; null for files written before this revision, which stay
under the server key) and ``datasets.erased_at`` (the key and files destroyed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("state_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("fires_after", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("withdrawn_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("data_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("data_key")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("withdrawn_reason")
        batch.drop_column("withdrawn_at")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("fires_after")
        batch.drop_column("state_reason")
        batch.drop_column("state")
