"""SQLAlchemy 2.0 tables: the database row is the truth for every job and release."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import StaticPool

__all__ = [
    "ApiKey",
    "AuditChain",
    "AuditEvent",
    "Base",
    "ConsoleLink",
    "ConsoleSession",
    "Dataset",
    "DatasetVersion",
    "IdempotentRequest",
    "Job",
    "JobState",
    "LedgerEntry",
    "Model",
    "Project",
    "Release",
    "Role",
    "Schedule",
    "ScheduleRun",
    "aware",
    "make_engine",
    "now",
]


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every stored one is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Role(enum.StrEnum):
    OWNER = "owner"
    CONSUMER = "consumer"
    AUDITOR = "auditor"
    ADMIN = "admin"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)  # who holds it
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # table or images
    epsilon_budget: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)  # the delta budget (basic composition)
    epsilon_spent: Mapped[float] = mapped_column(Float, default=0.0)
    delta_spent: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    schema_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    # the dataset's AES key, wrapped by the server key (service.storage.data_keys); null
    # for files written before revision 0003 (under the server key) and once erased
    data_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    erased_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)  # encrypted file, relative to data_dir
    format: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=now)
    __table_args__ = (UniqueConstraint("dataset_id", "number"),)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    touched_data: Mapped[bool] = mapped_column(default=False)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    model_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=now)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Model(Base):
    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    generator: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)  # artifact directory, relative to data_dir
    privacy: Mapped[dict[str, Any]] = mapped_column(JSON)
    schema_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    gates: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"gates": [...], "passed": bool}
    report_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class Release(Base):
    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), unique=True)
    approved_by: Mapped[str] = mapped_column(String(32))
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(nullable=True)
    withdrawn_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class Schedule(Base):
    __tablename__ = "schedules"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    cron: Mapped[str] = mapped_column(String(100))
    job: Mapped[dict[str, Any]] = mapped_column(JSON)
    auto_release: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # fire times at or before this are never run (set on resume and on a new cron)
    fires_after: Mapped[datetime | None] = mapped_column(nullable=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=now)


class ScheduleRun(Base):
    """One fire time of one schedule: the unique key makes enqueueing exactly-once."""

    __tablename__ = "schedule_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id"))
    fire_time: Mapped[datetime] = mapped_column()
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    skipped_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    __table_args__ = (UniqueConstraint("schedule_id", "fire_time"),)


class LedgerEntry(Base):
    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    epsilon: Mapped[float] = mapped_column(Float)  # positive: a charge; negative: a refund
    delta: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")  # same sign
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str | None] = mapped_column(String(32), nullable=True)  # key, scheduler, system
    version_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # data version
    created_at: Mapped[datetime] = mapped_column(default=now)


class IdempotentRequest(Base):
    """The answer to a POST sent with an Idempotency-Key (service.http.idempotency)."""

    __tablename__ = "idempotent_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32))  # the API key that sent it
    idempotency_key: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(300))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the canonical body
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=now)
    __table_args__ = (UniqueConstraint("key_id", "idempotency_key"),)


class AuditEvent(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=now, index=True)
    actor: Mapped[str] = mapped_column(String(32))  # API key id, or "system"
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # its hash chain (service.audit_chain): set when its transaction commits
    chain: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (UniqueConstraint("chain", "seq", name="uq_audit_log_chain_seq"),)


class AuditChain(Base):
    """The head of one audit hash chain; its row is the lock that orders the chain."""

    __tablename__ = "audit_chains"
    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    head: Mapped[str] = mapped_column(String(64))


class ConsoleSession(Base):
    """A web console sign-in: the browser holds a random token in an HttpOnly cookie,
    the database its SHA-256, the API key it acts as, and the form (CSRF) token."""

    __tablename__ = "console_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ConsoleLink(Base):
    """A one-time sign-in link (``sanitas console link``): redeemed once, then dead."""

    __tablename__ = "console_links"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)


def make_engine(url: str, *, static: bool = False) -> Engine:
    """An engine; ``static`` (SQLite only): one connection, for use from one thread."""
    if url.startswith("sqlite"):
        # a file connection is cheap: enough for every thread of the request threadpool
        pool = {"poolclass": StaticPool} if static else {"pool_size": 20, "max_overflow": 40}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, _: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
