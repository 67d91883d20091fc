"""``PATCH /v1/datasets/{id}/schema``: what an owner declares about a table's columns.

One format everywhere: the schema ``sanitas schema data.csv`` prints, ``GET
/v1/datasets/{id}`` shows and ``sanitas train --schema`` reads is itself a valid patch
(its ``columns`` and ``constraints``), and so is any part of it: a column entry names the
column and the fields it sets. The shorthand ``bounds``, ``categories`` and ``drop``
stay for quick edits. A change of kind is checked against the rows before it is saved,
so a declaration the rows cannot hold fails here, not in a job that already paid.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service.api.datasets import dataset_view
from service.api.deps import get_scoped, session
from service.api.views import DatasetView
from service.db import Dataset, Role
from service.domain.dataset_rows import version_rows
from service.domain.datasets import latest_version, live
from service.domain.records import audit
from service.errors import Problem
from service.http.auth import Principal, require
from service.storage.uploads import MAX_COLUMNS
from training.constraints import MAX_CONSTRAINTS, Constraint  # pydantic and pandas only
from training.schema import (  # pydantic and pandas only: no torch
    ColumnKind,
    Resolution,
    TableSchema,
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

Scalar = str | int | float | bool


class ColumnPatch(BaseModel):
    """One column: its name, and each field to set (as in the schema document)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=1000)
    kind: ColumnKind | None = None
    dtype: str | None = Field(default=None, max_length=40)
    excluded: str | None = Field(default=None, max_length=300)
    public_bounds: tuple[float, float] | None = None
    public_categories: list[Scalar] | None = Field(default=None, max_length=100_000)
    decimals: int | None = None
    resolution: Resolution | None = None
    nullable: bool | None = None


class SchemaPatch(BaseModel):
    """Public metadata the owner declares; each saves budget the pipeline would spend.

    ``columns`` entries set the fields they name (a full schema document sets them
    all). ``constraints`` (order, equal, combinations between columns) replace those
    declared before when given; every synthetic row keeps them (``[]`` clears them)."""

    model_config = ConfigDict(extra="forbid")

    columns: list[ColumnPatch] = Field(default=[], max_length=MAX_COLUMNS)
    bounds: dict[str, tuple[float, float]] = {}
    categories: dict[str, list[Scalar]] = {}
    drop: list[str] = []
    constraints: list[Constraint] | None = Field(default=None, max_length=MAX_CONSTRAINTS)


def _apply(schema: TableSchema, patch: SchemaPatch) -> tuple[TableSchema, list[str]]:
    """The patched schema and the columns whose kind changed."""
    from training.errors import SchemaError

    retyped = []
    try:
        for entry in patch.columns:
            changes = entry.model_dump(exclude_unset=True, exclude={"name"})
            if "kind" in changes and changes["kind"] != schema.column(entry.name).kind:
                retyped.append(entry.name)
            schema = schema.with_column(entry.name, changes)
        for name, (lo, hi) in patch.bounds.items():
            schema = schema.with_public_bounds(name, lo, hi)
        for name, values in patch.categories.items():
            schema = schema.with_public_categories(name, values)
        for name in patch.drop:
            schema = schema.drop(name)
        if patch.constraints is not None:
            schema = schema.with_constraints(patch.constraints)
    except (SchemaError, KeyError, ValueError) as e:
        raise Problem(422, "Invalid Schema Change", str(e).strip("'\"")) from e
    return schema, retyped


def _check_rows(request: Request, d: Dataset, version: Any, schema: TableSchema,
                retyped: list[str]) -> None:  # fmt: skip
    """A column declared of a new kind must hold it in every row of the latest version."""
    from training.errors import SchemaError

    modelled = [n for n in retyped if schema.column(n).excluded is None]
    if not modelled or version is None:
        return
    state = request.app.state
    rows = version_rows(state.objects, state.ctx.keys, state.settings.data_dir, d, version,
                        modelled)  # fmt: skip
    subset = TableSchema(columns=[schema.column(n) for n in modelled])
    try:
        subset.validate_frame(rows)
    except SchemaError as e:
        raise Problem(422, "Kind Does Not Fit The Rows", str(e)) from e


@router.patch(
    "/{dataset_id}/schema", response_model=DatasetView, operation_id="declarePublicSchema"
)
def patch_schema(
    request: Request,
    dataset_id: str,
    patch: SchemaPatch,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Declare column kinds, public bounds and categories, nullability, exclusions and
    constraints. Each public declaration is metadata the pipeline then does not learn
    under DP (it saves epsilon), so it must come from outside the data: a codebook, a
    standard, the form the data was collected with."""
    d = live(get_scoped(s, Dataset, dataset_id, who))
    if d.kind != "table":
        raise Problem(422, "Not A Table", f"dataset {d.id} holds images: it has no columns")
    schema, retyped = _apply(TableSchema.model_validate(d.schema_json), patch)
    version = latest_version(s, d.id)
    _check_rows(request, d, version, schema, retyped)
    d.schema_json = schema.model_dump(mode="json")
    audit(
        s, who, "dataset.schema", project_id=d.project_id, target=d.id,
        columns=[c.name for c in patch.columns][:100], kinds=retyped[:100],
        bounds=list(patch.bounds), categories=list(patch.categories), drop=patch.drop,
        constraints=None if patch.constraints is None else len(patch.constraints),
    )  # fmt: skip
    s.commit()
    return dataset_view(d, version)
