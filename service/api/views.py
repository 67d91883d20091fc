"""What each route answers: the response bodies the served OpenAPI documents.

Routes build plain dicts; FastAPI checks them against these models on the way out
(``extra="forbid"``: a field a route adds without declaring it here fails loudly in
the tests rather than vanishing from the documentation).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApiKeyView",
    "AuditEventView",
    "BudgetView",
    "DatasetErased",
    "DatasetView",
    "HealthView",
    "JobView",
    "KeyCreated",
    "ModelView",
    "ReleaseCard",
    "ScheduleView",
    "VersionCreated",
    "binary_responses",
]


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class VersionSummary(_View):
    id: str
    number: int
    rows: int
    bytes: int
    sha256: str  # of the plaintext as uploaded: an owner can check the stored copy


class DatasetView(_View):
    id: str
    name: str
    kind: Literal["table", "images"]
    project_id: str
    epsilon_budget: float
    epsilon_spent: float
    epsilon_remaining: float
    delta: float
    delta_spent: float
    schema_: dict[str, Any] = Field(alias="schema")  # BaseModel has a .schema
    schema_notice: str  # schema inference read the rows: not covered by epsilon
    erased_at: str | None = None  # erased: data key and files destroyed
    created_at: str | None
    version: VersionSummary | None


class DatasetErased(_View):
    """What erasing a dataset did."""

    id: str
    erased_at: str | None
    versions: int  # files deleted (their rows keep only row and byte counts)
    models_deleted: list[str]
    models_kept: list[str]  # keep_models=true: DP post-processing, kept by the owner
    releases_withdrawn: list[str]
    schedules_deleted: list[str]


class VersionCreated(_View):
    id: str
    dataset_id: str
    number: int
    rows: int


class LedgerLine(_View):
    id: int
    job_id: str | None
    epsilon: float  # positive: a charge; negative: a refund
    delta: float
    reason: str
    actor: str | None  # the API key id, "scheduler" or "system" (refunds)
    data_version: int | None  # the dataset version the job trained on
    outcome: str | None  # the job's state now (a charge stays unless refunded)
    at: str | None


class BudgetView(_View):
    dataset_id: str
    epsilon_budget: float
    epsilon_spent: float
    epsilon_remaining: float
    delta: float
    delta_spent: float
    delta_remaining: float
    ledger_total: float
    ledger: list[LedgerLine]


class JobView(_View):
    id: str
    state: str
    progress: float
    dataset_id: str
    epsilon: float
    spec: dict[str, Any]
    model_id: str | None
    error: str | None
    log: list[str]
    touched_data: bool
    worker: str | None
    created_at: str | None
    finished_at: str | None


class ModelView(_View):
    id: str
    dataset_id: str
    job_id: str
    generator: str
    privacy: dict[str, Any]
    schema_: dict[str, Any] = Field(alias="schema")
    gates: list[dict[str, Any]]
    passed: bool
    released: bool
    created_at: str | None


class ColumnName(_View):
    name: str
    kind: str
    # what samples hold: categorical {categories, other, nullable}; numeric and dates
    # {range, step, nullable}. Categories and ranges: released under DP or declared
    # public (covered by epsilon); step and nullable follow the confirmed schema
    # (inferred from the rows unless declared: not covered, like the kinds)
    domain: dict[str, Any] | None = None


class GateStatus(_View):
    name: str
    status: str


class ReleaseCard(_View):
    """What a consumer may know of a release, and which of it epsilon covers."""

    id: str
    name: str | None  # set by the owner, or the dataset's name and version
    description: str | None
    dataset_id: str
    dataset_name: str | None
    dataset_version: int | None
    model_id: str
    generator: str
    epsilon: float | None
    delta: float | None
    epsilon_preprocessing: float | None
    epsilon_training: float | None
    epsilon_calibration: float | None
    columns: list[ColumnName]
    gates: list[GateStatus]
    override: bool
    covered_by_epsilon: list[str]
    not_covered_by_epsilon: list[str]
    kind: Literal["table", "images"]
    classes: list[str] | None = None  # images: those DP selection kept
    image_shape: list[int] | None = None
    withdrawn_at: str | None = None
    withdrawn_reason: str | None = None
    created_at: str | None


class ScheduleRunView(_View):
    fire_time: str | None
    job_id: str | None
    skipped_reason: str | None


class ScheduleView(_View):
    id: str
    dataset_id: str
    cron: str
    job: dict[str, Any]
    auto_release: bool
    state: Literal["active", "paused", "deleted"]
    state_reason: str | None  # why it was paused (a skipped run) or deleted
    next_run_at: str | None  # null unless active
    created_at: str | None
    runs: list[ScheduleRunView]  # the last 20, oldest first


class AuditEventView(_View):
    id: int
    at: str | None
    actor: str
    project_id: str | None
    action: str
    target: str | None
    detail: dict[str, Any]
    chain: str  # the project's id, or "-" for events of no project
    seq: int | None  # place in the chain
    prev_hash: str | None  # hash of the entry before it in the chain
    hash: str | None  # SHA-256 over the previous hash and this entry's fields


class AuditHeadView(_View):
    chain: str
    seq: int
    hash: str


def binary_responses(media_types: dict[str, str], description: str) -> dict[int | str, Any]:
    """The 200 of a route that answers a file or a stream, one schema per media type."""
    schema = {"type": "string", "format": "binary"}
    content = {media: {"schema": schema} for media in sorted(set(media_types.values()))}
    return {200: {"description": description, "content": content}}


class ApiKeyView(_View):
    id: str
    role: str
    project: str | None
    label: str | None
    created_at: str | None
    revoked_at: str | None


class KeyCreated(ApiKeyView):
    key: str  # the secret: in this answer only


class HealthView(_View):
    status: Literal["ok", "ready"]
