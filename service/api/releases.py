"""Releases: an owner approves a model; consumers read its card and stream its samples."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from service.api.deps import check_scope, get_scoped, session
from service.api.pages import Page, PageParams, keyset, page, page_params
from service.api.views import ReleaseCard, binary_responses
from service.db import Dataset, DatasetVersion, Job, Model, Release, Role, now
from service.domain.records import audit, iso, new_id
from service.errors import Problem
from service.http.auth import Principal, require
from service.http.idempotency import Idempotency, idempotency
from service.sampling.download_slots import DownloadSlots, SlotsBusy
from service.sampling.samplers import SamplerRefused, SamplerUnavailable
from service.sampling.stream import SampleStream
from service.storage.image_uploads import IMAGE_FORMATS
from service.storage.tables import parse_scalar

router = APIRouter(prefix="/v1/releases", tags=["releases"])
CARD_SECONDS = 30.0
READERS = (Role.CONSUMER, Role.OWNER, Role.AUDITOR)
MEDIA = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "npz": "application/octet-stream",
    "zip": "application/zip",
}


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo'd field is a 422, never a default
    model_id: str
    override_reason: str | None = Field(default=None, min_length=10, max_length=2000)
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="what consumers see it as (default: the dataset's name and version)",
    )
    description: str | None = Field(default=None, max_length=4000)


class WithdrawRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=10, max_length=2000, description="shown to consumers")


# What a consumer sees and whether epsilon covers it (docs/privacy.md, "What a release
# card shows"): the samples are post-processing of the DP model; the rest is named here
COVERED_BY_EPSILON = [
    "the synthetic samples and everything drawn from the model (any n, seed, where=)",
    "the released domains: categories kept and numeric ranges learned under DP, or "
    "declared public by the owner",
    "image releases: the classes kept by DP selection",
]
NOT_COVERED_BY_EPSILON = [
    "column names and kinds, and each domain's step and nullable: the schema the owner "
    "confirmed, inferred from the rows "
    "unless declared",
    "gate results (pass or fail, and whether an owner overrode one): computed on the "
    "real training and holdout rows; an automatic release is decided on them",
    "image releases: the image size",
    "that the release exists, when it was made, and its generator",
    "its withdrawal, if any: when, and the reason the owner wrote",
    "its name and description, and its dataset's name and version: the owner's words",
]


def release_card(r: Release, m: Model, origin: Origin | None = None) -> dict[str, Any]:
    """What a consumer may know: what it is (name, description, dataset and version),
    the guarantee, the columns and what their samples can hold, the gate summary, and
    which of these epsilon covers."""
    p = m.privacy
    origin = origin or Origin(m.dataset_id, None, None)
    default_name = (
        f"{origin.dataset_name} v{origin.dataset_version}" if origin.dataset_name else None
    )
    domains = m.schema_json.get("released_domains", {})
    return {
        "id": r.id,
        "name": r.name or default_name,
        "description": r.description,
        "dataset_id": origin.dataset_id,
        "dataset_name": origin.dataset_name,
        "dataset_version": origin.dataset_version,
        "model_id": m.id,
        "generator": m.generator,
        "epsilon": p.get("epsilon"),
        "delta": p.get("delta"),
        "epsilon_preprocessing": p.get("epsilon_preprocessing"),
        "epsilon_training": p.get("epsilon_training"),
        "epsilon_calibration": p.get("epsilon_calibration"),
        "columns": [
            {"name": c["name"], "kind": c["kind"], "domain": domains.get(c["name"])}
            for c in m.schema_json["columns"]
            if c.get("excluded") is None
        ],
        "gates": [{"name": g["name"], "status": g["status"]} for g in m.gates["gates"]],
        "override": r.override_reason is not None,
        "covered_by_epsilon": COVERED_BY_EPSILON,
        "not_covered_by_epsilon": NOT_COVERED_BY_EPSILON,
        **_image_fields(m.schema_json),
        "withdrawn_at": iso(r.withdrawn_at),
        "withdrawn_reason": r.withdrawn_reason,
        "created_at": iso(r.created_at),
    }


@dataclass(frozen=True)
class Origin:
    """Where a release's model came from."""

    dataset_id: str
    dataset_name: str | None
    dataset_version: int | None


def with_origin(query: Any) -> Any:
    """``query`` (over Model) with its model's dataset name and version number added as
    two columns: a list reads every card's origin in its own query."""
    return (
        query.add_columns(Dataset.name, DatasetVersion.number)
        .outerjoin(Job, Job.id == Model.job_id)
        .outerjoin(Dataset, Dataset.id == Job.dataset_id)
        .outerjoin(DatasetVersion, DatasetVersion.id == Job.version_id)
    )


def origin_of(s: Session, m: Model) -> Origin:
    _, name, number = s.execute(with_origin(select(Model.id).where(Model.id == m.id))).one()
    return Origin(m.dataset_id, name, number)


def gone(release_id: str, withdrawn_at: str | None, reason: str | None) -> Problem:
    """What anyone asking for a withdrawn release's samples (and a consumer asking for
    its card) is answered."""
    return Problem(
        410,
        "Release Withdrawn",
        f"release {release_id} was withdrawn at {withdrawn_at}: {reason}",
        withdrawn_at=withdrawn_at,
        reason=reason,
    )


def _image_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """Kind, and for images the classes DP selection kept and the image size."""
    if schema.get("kind") != "images":
        return {"kind": "table"}
    shape = [schema["height"], schema["width"], schema["channels"]]
    return {"kind": "images", "classes": schema.get("classes", []), "image_shape": shape}


@router.post("", status_code=201, response_model=ReleaseCard, operation_id="createRelease")
def create_release(
    body: ReleaseRequest,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
    once: Idempotency = Depends(idempotency),
) -> dict[str, Any]:
    """Approve a model for consumers; refused while a gate fails unless an override
    reason is given (audited)."""
    m = get_scoped(s, Model, body.model_id, who)
    once.replay(s, who.key_id)
    failed = [g["name"] for g in m.gates["gates"] if g["status"] == "fail"]
    if failed and not body.override_reason:
        raise Problem(
            409,
            "Gate Failed",
            f"gates failed: {', '.join(failed)}; give an "
            "override_reason to release anyway (it is audited)",
            failed_gates=failed,
        )
    if s.scalar(select(Release).where(Release.model_id == m.id)) is not None:
        raise Problem(409, "Already Released", f"model {m.id} is already released")
    r = Release(
        id=new_id(),
        project_id=m.project_id,
        model_id=m.id,
        approved_by=who.key_id,
        override_reason=body.override_reason if failed else None,
        name=body.name,
        description=body.description,
    )
    s.add(r)
    audit(
        s,
        who,
        "release.create",
        project_id=m.project_id,
        target=r.id,
        model_id=m.id,
        failed_gates=failed,
        override_reason=r.override_reason,
    )
    s.flush()  # column defaults (log, created_at) filled in for the stored answer
    card = release_card(r, m, origin_of(s, m))
    once.commit(s, who.key_id, 201, card)
    return card


@router.get("", response_model=Page[ReleaseCard], operation_id="listReleases")
def list_releases(
    dataset_id: str | None = Query(default=None, max_length=64, description="only this dataset's"),
    params: PageParams = Depends(page_params),
    who: Principal = Depends(require(*READERS)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Release cards of the key's project, oldest first, a page at a time."""
    query = select(Release, Model).join(Model, Model.id == Release.model_id)
    if who.project_id is not None:
        query = query.where(Release.project_id == who.project_id)
    if who.role == Role.CONSUMER:  # owners and auditors still see what was withdrawn
        query = query.where(Release.withdrawn_at.is_(None))
    if dataset_id is not None:
        query = query.where(Model.dataset_id == dataset_id)
    rows = list(s.execute(keyset(with_origin(query), Release.created_at, Release.id, params)))
    return page(
        rows,
        params,
        lambda r: (r[0].created_at, r[0].id),
        lambda r: release_card(r[0], r[1], Origin(r[1].dataset_id, r[2], r[3])),
    )


@router.get("/{release_id}", response_model=ReleaseCard, operation_id="getRelease")
async def get_release(
    release_id: str, request: Request, who: Principal = Depends(require(*READERS))
) -> Response:
    """The card of a release; a consumer asking for a withdrawn one gets 410 and why.

    Each API process keeps the cards it has read, encoded, for CARD_SECONDS (this is the
    most-read route under load): a withdrawal made through another process shows on
    this one's cards within that time (downloads stop at once: they read the database).
    The key and its scope are checked on every request.
    """
    cards: ReleaseCards = request.app.state.release_cards
    cached = cards.get(release_id)
    if cached is None:
        cached = await run_in_threadpool(_read_card, request.app.state.sessions, release_id)
        cards.put(release_id, cached)
    check_scope(who, cached.project_id, "release", release_id)
    if cached.withdrawn is not None and who.role == Role.CONSUMER:
        raise gone(release_id, *cached.withdrawn)
    return Response(cached.body, media_type="application/json")


@dataclass(frozen=True)
class CachedCard:
    project_id: str
    body: bytes
    withdrawn: tuple[str | None, str | None] | None  # (when, why), if withdrawn
    read_at: float


def _read_card(sessions: Any, release_id: str) -> CachedCard:
    with sessions() as s:
        r = s.get(Release, release_id)
        if r is None:
            raise Problem(404, "Not Found", f"no release {release_id!r}")
        m = s.get(Model, r.model_id)
        card = release_card(r, m, origin_of(s, m))
        return CachedCard(
            r.project_id,
            json.dumps(card, separators=(",", ":")).encode(),
            None if r.withdrawn_at is None else (iso(r.withdrawn_at), r.withdrawn_reason),
            time.monotonic(),
        )


class ReleaseCards:
    """A bounded map of release id to its cached card; the oldest goes first, and none
    is served older than ``seconds``."""

    def __init__(self, size: int = 4096, seconds: float = CARD_SECONDS) -> None:
        self.size, self.seconds = size, seconds
        self._cards = OrderedDict[str, CachedCard]()

    def get(self, release_id: str) -> CachedCard | None:
        card = self._cards.get(release_id)
        if card is not None and time.monotonic() - card.read_at > self.seconds:
            self._cards.pop(release_id, None)
            return None
        return card

    def put(self, release_id: str, card: CachedCard) -> None:
        self._cards[release_id] = card
        while len(self._cards) > self.size:
            self._cards.popitem(last=False)

    def drop(self, release_id: str) -> None:
        self._cards.pop(release_id, None)


@router.post("/{release_id}/withdraw", response_model=ReleaseCard, operation_id="withdrawRelease")
def withdraw_release(
    release_id: str,
    body: WithdrawRequest,
    request: Request,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Stop a release for good: its samples answer 410 with the reason from now on, and
    consumers no longer list it. Rows already downloaded cannot be called back."""
    r = get_scoped(s, Release, release_id, who)
    if r.withdrawn_at is not None:
        raise Problem(409, "Already Withdrawn", f"release {r.id} was withdrawn at "
                      f"{iso(r.withdrawn_at)}")  # fmt: skip
    r.withdrawn_at, r.withdrawn_reason = now(), body.reason
    audit(s, who, "release.withdraw", project_id=r.project_id, target=r.id, reason=body.reason)
    s.commit()
    request.app.state.release_cards.drop(r.id)
    m = s.get(Model, r.model_id)
    return release_card(r, m, origin_of(s, m))  # type: ignore[arg-type]


def _where(items: list[str], columns: set[str]) -> dict[str, Any]:
    where: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition(":")
        if not sep or name not in columns:
            raise Problem(
                422,
                "Invalid Condition",
                f"where={item!r}: use column:value with a column of the release "
                f"({', '.join(sorted(columns)[:50])}); the card lists each one's values",
                columns=sorted(columns),
            )
        where[name] = parse_scalar(raw)
    return where


@router.get(
    "/{release_id}/samples",
    response_class=StreamingResponse,
    operation_id="sampleRelease",
    responses=binary_responses(MEDIA, "synthetic rows (csv, jsonl, parquet) or images (npz, zip)"),
)
async def samples(
    request: Request,
    release_id: str,
    n: int = Query(ge=1, description="rows to sample"),
    seed: int | None = Query(
        default=None, ge=0, le=2**63 - 1, description="the same seed gives the same rows"
    ),
    format: Literal["csv", "jsonl", "parquet", "npz", "zip"] = Query(
        default="csv", description="tables: csv, jsonl, parquet; images: npz, zip (of PNGs)"
    ),
    where: list[str] = Query(default=[], description="fix a column: col:value (repeatable)"),
    label: str | None = Query(default=None, description="images: the class to draw"),
    who: Principal = Depends(require(Role.CONSUMER, Role.OWNER)),
) -> StreamingResponse:
    """Synthetic rows, streamed from a sampler process (post-processing: costs no epsilon).

    The database session is closed before the download waits for a sampler or streams:
    a request-long session would hold a pooled connection (and, at its end, a worker
    thread) for the whole stream, and enough slow downloads starved every other route.
    """
    settings = request.app.state.settings
    if n > settings.max_sample_rows:
        raise Problem(
            422, "Too Many Rows", f"n={n:,} exceeds the limit {settings.max_sample_rows:,}"
        )
    model_path, conditions, rid, project_id = await run_in_threadpool(
        _authorize_download, request.app.state.sessions, release_id, who, format, where, label
    )
    # the artifact on this replica's disk: the data directory, or the bucket's cache
    model_dir = await run_in_threadpool(request.app.state.objects.local_dir, model_path)
    request_line = {
        "model_dir": str(model_dir),
        "n": n,
        "format": format,
        "where": conditions,
        "seed": seed,
        "label": label,
    }
    detail = {"rows": n, "format": format, "where": conditions, "label": label}
    stream = await _open_audited(request, request_line, who, project_id, rid, detail)
    name = f"sanitas-{rid}.{format}"
    return StreamingResponse(
        stream.chunks(),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
        background=BackgroundTask(stream.finish),
    )


async def _open_audited(
    request: Request,
    request_line: dict[str, Any],
    who: Principal,
    project_id: str,
    rid: str,
    detail: dict[str, Any],
) -> SampleStream:
    """The sampler's stream, audited when it ends: ``release.download`` with the rows
    sent when the sampler's whole output went out, else with ``complete: false`` and the
    bytes that did (a client gone, a stall); a request the sampler refused is logged as
    ``release.download.refused`` with why, and never as a download."""
    sessions = request.app.state.sessions

    async def ended(complete: bool, sent: int) -> None:
        outcome = {"rows": detail["rows"] if complete else None, "rows_asked": detail["rows"],
                   "complete": complete, "bytes": sent}  # fmt: skip
        await run_in_threadpool(
            _audit_download, sessions, who, project_id, rid, "release.download",
            {**detail, **outcome},
        )  # fmt: skip

    try:
        stream = await _open_sampler(
            request, request_line, (who.key_id, who.project_id or "(admin)"), ended
        )
    except Problem as e:
        if e.status == 422:
            await run_in_threadpool(
                _audit_download, sessions, who, project_id, rid, "release.download.refused",
                {**detail, "reason": e.detail},
            )  # fmt: skip
        raise
    return stream


async def _open_sampler(
    request: Request,
    request_line: dict[str, Any],
    holder: tuple[str, str],
    on_finish: Callable[[bool, int], Awaitable[None]] | None = None,
) -> SampleStream:
    """A sampler slot (this key's and project's share) and the sampler's stream; 503
    when the slots stay busy or the pool cannot answer, 422 when sampling fails."""
    settings = request.app.state.settings
    slots: DownloadSlots = request.app.state.samplers
    try:
        await slots.take(*holder, settings.sampler_wait_seconds)
    except SlotsBusy as e:
        raise Problem(
            503, "Samplers Busy",
            f"{e.limit} (waited {settings.sampler_wait_seconds:g} s); retry later",
            headers={"Retry-After": "10"},
        ) from None  # fmt: skip
    try:
        reader, writer = await request.app.state.sampler_pool.open(request_line)
    except SamplerRefused as e:
        await slots.give_back(*holder)
        raise Problem(422, "Sampling Failed", str(e).splitlines()[-1]) from None
    except SamplerUnavailable as e:
        await slots.give_back(*holder)
        raise Problem(503, "Sampler Unavailable", str(e), headers={"Retry-After": "10"}) from None
    return SampleStream(
        reader, writer, slots=slots, holder=holder,
        stall_seconds=settings.download_stall_seconds, on_finish=on_finish,
    )  # fmt: skip


def _authorize_download(
    sessions: Any,
    release_id: str,
    who: Principal,
    format: str,
    where: list[str],
    label: str | None,
) -> tuple[str, dict[str, Any], str, str]:
    """Scope check and where= parsing, in a session closed on return: the model's path,
    the conditions, the release id and its project."""
    with sessions() as s:
        r = get_scoped(s, Release, release_id, who)
        if r.withdrawn_at is not None:
            raise gone(r.id, iso(r.withdrawn_at), r.withdrawn_reason)
        m = s.get(Model, r.model_id)
        _check_kind(m.schema_json, format, where, label)  # type: ignore[union-attr]
        columns = {c["name"] for c in m.schema_json["columns"] if c.get("excluded") is None}  # type: ignore[union-attr]
        conditions = _where(where, columns)
        return str(m.path), conditions, r.id, r.project_id  # type: ignore[union-attr]


def _audit_download(
    sessions: Any, who: Principal, project_id: str, rid: str, action: str, detail: dict[str, Any]
) -> None:
    with sessions() as s:
        audit(s, who, action, project_id=project_id, target=rid, **detail)
        s.commit()


def _check_kind(schema: dict[str, Any], format: str, where: list[str], label: str | None) -> None:
    """Images come as npz or zip and take label=; tables the other formats and where=."""
    if schema.get("kind") == "images":
        if format not in IMAGE_FORMATS:
            raise Problem(
                422, "Wrong Format", f"an image release downloads as npz or zip, not {format}"
            )
        if where:
            raise Problem(422, "Invalid Condition", "an image release takes label=, not where=")
        if label is not None and label not in schema.get("classes", []):
            raise Problem(
                422, "Unknown Label", f"label={label!r} is not a class of this release: "
                f"{schema.get('classes')}",
            )  # fmt: skip
        return
    if format in IMAGE_FORMATS:
        raise Problem(
            422, "Wrong Format", f"a table release downloads as csv, jsonl or parquet, not {format}"
        )
    if label is not None:
        raise Problem(422, "Invalid Condition", "a table release takes where=, not label=")
