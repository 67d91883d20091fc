"""The audit log as hash chains: one per project (and one for events of no project).

Why: an auditor must be able to tell that nobody edited, deleted or reordered entries
after the fact. Each entry stores the hash of the one before it in its chain and its own
hash over a canonical form of its fields, so changing any entry breaks every link after
it. A chain can be checked from an export alone, with no access to the server; a head
(``seq``, ``hash``) written down earlier (an anchor) proves nothing before it was
rewritten since, which a database administrator could otherwise do by re-hashing the
whole chain.

Entries are sealed when their transaction commits: the chain's head row is locked (the
last lock the transaction takes, after every other write is flushed, so no two
transactions wait on each other), the entries take the next sequence numbers and their
hashes, and the head moves. A rolled-back transaction leaves no entry and no gap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.db import AuditChain, AuditEvent, aware

__all__ = [
    "GENESIS",
    "ChainCheck",
    "canonical",
    "chain_of",
    "check_database",
    "check_entries",
    "link",
    "make_sessionmaker",
    "seal_pending",
]

GENESIS = "0" * 64
SYSTEM_CHAIN = "-"  # events that belong to no project (refusals of unknown keys, admin)
PENDING = "audit_unsealed"  # session.info key: events added in this transaction


def chain_of(project_id: str | None) -> str:
    return project_id if project_id is not None else SYSTEM_CHAIN


def _moment(at: datetime | str) -> str:
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return aware(at).astimezone(UTC).isoformat(timespec="microseconds")


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: its chain, place, time, actor, action, target
    and detail as sorted compact JSON (the same bytes from the database or an export)."""
    fields = {
        "chain": entry["chain"],
        "seq": int(entry["seq"]),
        "at": _moment(entry["at"]),
        "actor": entry["actor"],
        "project_id": entry["project_id"],
        "action": entry["action"],
        "target": entry["target"],
        "detail": entry["detail"] or {},
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(entry)).hexdigest()


def _fields(e: AuditEvent) -> dict[str, Any]:
    return {
        "chain": e.chain, "seq": e.seq, "at": e.at, "actor": e.actor,
        "project_id": e.project_id, "action": e.action, "target": e.target,
        "detail": e.detail,
    }  # fmt: skip


def _lock_head(s: Session, chain: str) -> tuple[int, str]:
    """The chain's head, locked until commit: a no-op UPDATE takes PostgreSQL's row
    lock and SQLite's write lock alike (a SELECT ... FOR UPDATE would not on SQLite)."""
    postgres = s.bind is not None and s.bind.dialect.name == "postgresql"
    insert = postgresql.insert if postgres else sqlite.insert
    s.execute(insert(AuditChain).values(chain=chain, seq=0, head=GENESIS).on_conflict_do_nothing())
    s.execute(update(AuditChain).where(AuditChain.chain == chain).values(seq=AuditChain.seq))
    row = s.execute(select(AuditChain.seq, AuditChain.head).where(AuditChain.chain == chain)).one()
    return int(row.seq), str(row.head)


def seal_pending(s: Session) -> None:
    """Give this transaction's new entries their place and hashes (``before_commit``)."""
    pending: list[AuditEvent] = s.info.pop(PENDING, [])
    if not pending:
        return
    s.flush()  # every other write first: the head lock is the transaction's last lock
    with s.no_autoflush:
        for chain in sorted({e.chain for e in pending}):
            seq, head = _lock_head(s, chain)
            for e in (e for e in pending if e.chain == chain):
                seq += 1
                e.seq, e.prev_hash = seq, head
                head = e.hash = link(head, _fields(e))
            s.execute(
                update(AuditChain).where(AuditChain.chain == chain).values(seq=seq, head=head)
            )


def forget_pending(s: Session) -> None:
    s.info.pop(PENDING, None)


@dataclass
class ChainCheck:
    """What checking entries found, chain by chain."""

    heads: dict[str, tuple[int, str]] = field(default_factory=dict)  # chain -> (seq, hash)
    starts: dict[str, int] = field(default_factory=dict)  # chain -> first seq seen
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "chains": {
                c: {"from_seq": self.starts[c], "seq": s, "head": h,
                    "complete_from_start": self.starts[c] == 1}
                for c, (s, h) in sorted(self.heads.items())
            },
            "problems": self.problems[:50],
        }  # fmt: skip


def check_entries(
    entries: Iterable[Mapping[str, Any]], anchors: Mapping[str, tuple[int, str]] | None = None
) -> ChainCheck:
    """Check entries given in sequence order within each chain (chains may interleave).

    A segment that does not start at seq 1 is checked from its first entry's stated
    ``prev_hash``; an anchor (chain -> seq, hash) must match the entry at that seq.
    """
    found = ChainCheck()
    wanted = dict(anchors or {})
    for entry in entries:
        found.entries += 1
        chain, seq = str(entry["chain"]), int(entry["seq"])
        where = f"chain {chain!r} seq {seq}"
        if chain in found.heads:
            last_seq, last_hash = found.heads[chain]
            if seq != last_seq + 1:
                found.problems.append(f"{where}: follows seq {last_seq} (entries missing)")
            if entry["prev_hash"] != last_hash:
                found.problems.append(f"{where}: prev_hash is not the hash before it")
        else:
            found.starts[chain] = seq
            if seq == 1 and entry["prev_hash"] != GENESIS:
                found.problems.append(f"{where}: the first entry does not start the chain")
        if link(str(entry["prev_hash"]), entry) != entry["hash"]:
            found.problems.append(f"{where}: hash does not match its content")
        found.heads[chain] = (seq, str(entry["hash"]))
        anchor = wanted.get(chain)
        if anchor is not None and anchor[0] == seq:
            if anchor[1] != entry["hash"]:
                found.problems.append(f"{where}: differs from the anchor {anchor[1][:12]}...")
            wanted.pop(chain)
    found.problems += [f"chain {c!r}: anchor seq {a[0]} not reached" for c, a in wanted.items()]
    return found


def _stored(s: Session, batch: int = 2000) -> Iterable[dict[str, Any]]:
    after: tuple[str, int] = ("", 0)
    while True:
        rows = list(s.scalars(
            select(AuditEvent)
            .where(AuditEvent.seq.is_not(None))
            .where((AuditEvent.chain > after[0])
                   | ((AuditEvent.chain == after[0]) & (AuditEvent.seq > after[1])))
            .order_by(AuditEvent.chain, AuditEvent.seq).limit(batch)
        ))  # fmt: skip
        if not rows:
            return
        for e in rows:
            yield {**_fields(e), "prev_hash": e.prev_hash, "hash": e.hash}
        after = (rows[-1].chain, int(rows[-1].seq or 0))


def check_database(s: Session, anchors: Mapping[str, tuple[int, str]] | None = None) -> ChainCheck:
    """Every chain in the database, and each against its head row: a chain whose last
    entries were deleted still links, but no longer reaches the head it moved to."""
    found = check_entries(_stored(s), anchors)
    for chain, seq, head in s.execute(select(AuditChain.chain, AuditChain.seq, AuditChain.head)):
        if seq and found.heads.get(chain) != (seq, head):
            found.problems.append(f"chain {chain!r}: its head is seq {seq}, the entries end "
                                  f"at {found.heads.get(chain, (0, ''))[0]}")  # fmt: skip
    for chain, start in found.starts.items():
        if start != 1:
            found.problems.append(f"chain {chain!r}: entries before seq {start} are missing")
    unsealed = s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.seq.is_(None)))
    if unsealed:
        found.problems.append(f"{unsealed} entries have no place in any chain")
    return found


def make_sessionmaker(engine: Engine) -> sessionmaker:
    """Sessions that seal their audit entries into the hash chains as they commit (here,
    beside the sealing, so that ``service.db`` stays below it)."""
    maker = sessionmaker(engine, expire_on_commit=False)
    event.listen(maker, "before_commit", seal_pending)
    event.listen(maker, "after_rollback", forget_pending)
    return maker
