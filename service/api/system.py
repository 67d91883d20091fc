"""Health, readiness and Prometheus metrics (no auth: they reveal no data)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select, text

from service.api.views import HealthView, binary_responses
from service.db import Job
from service.errors import Problem

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=HealthView, operation_id="healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=HealthView, operation_id="readyz")
def readyz(request: Request) -> dict[str, Any]:
    try:
        with request.app.state.sessions() as s:
            s.execute(text("SELECT 1"))
    except Exception as e:
        raise Problem(503, "Not Ready", f"database unreachable: {type(e).__name__}") from e
    return {"status": "ready"}


@router.get(
    "/metrics",
    response_class=Response,
    responses=binary_responses({"text": "text/plain"}, "Prometheus text format"),
    operation_id="getMetrics",
)
def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if not request.app.state.settings.expose_metrics:
        raise Problem(404, "Not Found", "metrics are not exposed on this deployment")

    registry = request.app.state.metrics
    with request.app.state.sessions() as s:
        for state, count in s.execute(select(Job.state, func.count()).group_by(Job.state)):
            registry.jobs.labels(state=state).set(count)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
