"""API keys over HTTP, for admins: make (the secret shown once), list, revoke.

The CLI (`sanitas keys ...`) does the same against the database directly, for the first
admin key and for operators on the host.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import session
from service.api.pages import Page, PageParams, keyset, page, page_params
from service.api.views import ApiKeyView, KeyCreated
from service.db import ApiKey, Role
from service.domain.records import audit, iso
from service.errors import Problem
from service.http.auth import Principal, create_key, require, revoke_key

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    project: str | None = Field(default=None, min_length=1, max_length=64)
    label: str | None = Field(default=None, max_length=200, description="who or what holds it")


def key_view(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "role": k.role,
        "project": k.project_id,
        "label": k.label,
        "created_at": iso(k.created_at),
        "revoked_at": iso(k.revoked_at),
    }


@router.post("", status_code=201, response_model=KeyCreated, operation_id="createKey")
def make_key(
    body: KeyRequest, who: Principal = Depends(require(Role.ADMIN)), s: Session = Depends(session)
) -> dict[str, Any]:
    """A new key; its secret is in this answer only (the server keeps its hash)."""
    try:
        token, key_id = create_key(s, body.role, body.project, label=body.label)
    except ValueError as e:
        raise Problem(422, "Invalid Key Request", str(e)) from e
    key = s.get(ApiKey, key_id)
    assert key is not None
    audit(s, who, "key.create", project_id=key.project_id, target=key_id, role=key.role,
          label=key.label)  # fmt: skip
    s.commit()
    return {**key_view(key), "key": token}


@router.get("", response_model=Page[ApiKeyView], operation_id="listKeys")
def list_keys(
    params: PageParams = Depends(page_params),
    who: Principal = Depends(require(Role.ADMIN)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Every key (never a secret), oldest first."""
    rows = list(s.scalars(keyset(select(ApiKey), ApiKey.created_at, ApiKey.id, params)))
    return page(rows, params, lambda k: (k.created_at, k.id), key_view)


@router.post("/{key_id}/revoke", response_model=ApiKeyView, operation_id="revokeKey")
def revoke(
    key_id: str, who: Principal = Depends(require(Role.ADMIN)), s: Session = Depends(session)
) -> dict[str, Any]:
    """Revoke at once: the next request made with the key gets 401 (and is audited)."""
    key = s.get(ApiKey, key_id)
    if key is None:
        raise Problem(404, "Not Found", f"no key {key_id!r}")
    if key.id == who.key_id:
        raise Problem(409, "Own Key", "an admin cannot revoke the key it is using")
    revoke_key(s, key_id)
    audit(s, who, "key.revoke", project_id=key.project_id, target=key_id)
    s.commit()
    return key_view(key)
