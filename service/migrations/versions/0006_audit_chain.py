"""the audit log as hash chains

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 05:00:00

Each audit entry gains its chain (its project, or ``-``), its place in it and the hashes
that link it to the one before (service.audit_chain); ``audit_chains`` holds each
chain's head. Entries written before this revision are sealed here in the order they
were written (time, then id): the chain vouches for them from now on, not for what may
have happened to them before.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.audit_chain import GENESIS, chain_of, link

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _seal_existing() -> dict[str, tuple[int, str]]:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, at, actor, project_id, action, target, detail FROM audit_log "
        "ORDER BY at, id"
    )).mappings().all()  # fmt: skip
    heads: dict[str, tuple[int, str]] = {}
    for row in rows:
        chain = chain_of(row["project_id"])
        seq, head = heads.get(chain, (0, GENESIS))
        detail = row["detail"]
        if isinstance(detail, str):  # SQLite hands JSON back as text through text()
            detail = json.loads(detail)
        entry = {**row, "detail": detail, "chain": chain, "seq": seq + 1}
        new_head = link(head, entry)
        conn.execute(
            sa.text("UPDATE audit_log SET chain = :c, seq = :s, prev_hash = :p, hash = :h "
                    "WHERE id = :id"),
            {"c": chain, "s": seq + 1, "p": head, "h": new_head, "id": row["id"]},
        )  # fmt: skip
        heads[chain] = (seq + 1, new_head)
    return heads


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("chain", sa.String(64), nullable=True))
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    chains = op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
    )
    heads = _seal_existing()
    op.bulk_insert(chains, [{"chain": c, "seq": s, "head": h} for c, (s, h) in heads.items()])
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("chain", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_audit_log_chain_seq", ["chain", "seq"])


def downgrade() -> None:
    op.drop_table("audit_chains")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_chain_seq", type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
        batch.drop_column("chain")
