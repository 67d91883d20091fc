"""The Python client: every role's calls over HTTP, typed by the API's own views.

    from service.client import Client

    with Client("http://127.0.0.1:8000", key) as sanitas:
        card = next(sanitas.releases())
        frame = sanitas.samples(card.id, n=10_000, where={"region": "south"})

Results are the response models the server documents (``service.api.views``), read
leniently (a field a newer server adds is ignored). Problems are raised as typed
exceptions (``service.client.errors``). Lists are iterators that follow the cursor.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel

from service.api.views import (
    AuditEventView,
    AuditHeadView,
    BudgetView,
    DatasetErased,
    DatasetView,
    JobView,
    ModelView,
    ReleaseCard,
    ScheduleView,
)
from service.client.downloads import stream_samples
from service.client.transport import Transport, raise_for_problem

__all__ = ["Client"]

ViewT = TypeVar("ViewT", bound=BaseModel)
FINISHED = ("succeeded", "failed", "cancelled")


def _read(model: type[ViewT], data: dict[str, Any]) -> ViewT:
    """``data`` as ``model``, leaving out fields this client does not know."""
    known = {field.alias or name for name, field in model.model_fields.items()}
    return model.model_validate({k: v for k, v in data.items() if k in known})


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class Client:
    """A Sanitas server at ``url`` under API key ``key`` (defaults: SANITAS_URL and
    SANITAS_API_KEY)."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        url = url or os.environ.get("SANITAS_URL", "http://127.0.0.1:8000")
        key = key or os.environ.get("SANITAS_API_KEY")
        if not key:
            raise ValueError("no API key: pass key= or set SANITAS_API_KEY")
        self._t = Transport(url, key, timeout=timeout, retries=retries)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._t.close()

    def _pages(self, path: str, model: type[ViewT], **params: Any) -> Iterator[ViewT]:
        cursor = None
        while True:
            page = self._t.call("GET", path, params=_clean({**params, "cursor": cursor}))
            yield from (_read(model, item) for item in page["items"])
            if (cursor := page["next_cursor"]) is None:
                return

    # datasets (owners; auditors read)
    def upload(
        self,
        data: pd.DataFrame | str | Path,
        *,
        name: str,
        epsilon_budget: float,
        delta: float = 1e-5,
    ) -> DatasetView:
        """A table (a DataFrame, sent as Parquet, or a .csv/.parquet/.npz/.zip file)."""
        if isinstance(data, pd.DataFrame):
            buffer = io.BytesIO()
            data.to_parquet(buffer, index=False)
            file: tuple[str, Any] = (f"{name}.parquet", buffer.getvalue())
        else:
            file = (Path(data).name, Path(data).read_bytes())
        form = {"name": name, "epsilon_budget": str(epsilon_budget), "delta": str(delta)}
        body = self._t.call("POST", "/v1/datasets", files={"file": file}, data=form)
        return _read(DatasetView, body)

    def datasets(self, **filters: Any) -> Iterator[DatasetView]:
        return self._pages("/v1/datasets", DatasetView, **filters)

    def dataset(self, dataset_id: str) -> DatasetView:
        return _read(DatasetView, self._t.call("GET", f"/v1/datasets/{dataset_id}"))

    def declare_schema(self, dataset_id: str, **patch: Any) -> DatasetView:
        """Public metadata: ``bounds``, ``categories``, ``drop``, ``constraints``."""
        body = self._t.call("PATCH", f"/v1/datasets/{dataset_id}/schema", json=patch)
        return _read(DatasetView, body)

    def budget(self, dataset_id: str) -> BudgetView:
        return _read(BudgetView, self._t.call("GET", f"/v1/datasets/{dataset_id}/budget"))

    def erase(self, dataset_id: str, *, keep_models: bool = False) -> DatasetErased:
        params = {"keep_models": str(keep_models).lower()}
        body = self._t.call("DELETE", f"/v1/datasets/{dataset_id}", params=params)
        return _read(DatasetErased, body)

    # jobs and models
    def train(self, dataset_id: str, *, epsilon: float, **options: Any) -> JobView:
        """Queue a job (charged once, however often the call is retried)."""
        body = {"dataset_id": dataset_id, "epsilon": epsilon, **options}
        return _read(JobView, self._t.call("POST", "/v1/jobs", json=body, idempotent=True))

    def job(self, job_id: str) -> JobView:
        return _read(JobView, self._t.call("GET", f"/v1/jobs/{job_id}"))

    def jobs(self, **filters: Any) -> Iterator[JobView]:
        """``state``, ``dataset_id``, ``since``, ``until``."""
        return self._pages("/v1/jobs", JobView, **filters)

    def wait(self, job_id: str, *, timeout: float = 3600, every: float = 1.0) -> JobView:
        """The job once it has ended (succeeded, failed or cancelled)."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id)).state not in FINISHED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout:g} s")
            time.sleep(every)
        return job

    def cancel(self, job_id: str) -> JobView:
        return _read(JobView, self._t.call("POST", f"/v1/jobs/{job_id}/cancel"))

    def model(self, model_id: str) -> ModelView:
        return _read(ModelView, self._t.call("GET", f"/v1/models/{model_id}"))

    def models(self, **filters: Any) -> Iterator[ModelView]:
        return self._pages("/v1/models", ModelView, **filters)

    def report(self, model_id: str, format: Literal["html", "pdf", "json"] = "pdf") -> bytes:
        path = f"/v1/models/{model_id}/report"
        return bytes(self._t.send("GET", path, params={"format": format}).content)

    # releases
    def release(
        self,
        model_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        override_reason: str | None = None,
    ) -> ReleaseCard:
        """Approve a model for consumers (made once, however often retried)."""
        body = _clean({"model_id": model_id, "name": name, "description": description,
                       "override_reason": override_reason})  # fmt: skip
        return _read(ReleaseCard, self._t.call("POST", "/v1/releases", json=body, idempotent=True))

    def releases(self, **filters: Any) -> Iterator[ReleaseCard]:
        return self._pages("/v1/releases", ReleaseCard, **filters)

    def card(self, release_id: str) -> ReleaseCard:
        return _read(ReleaseCard, self._t.call("GET", f"/v1/releases/{release_id}"))

    def withdraw(self, release_id: str, reason: str) -> ReleaseCard:
        path = f"/v1/releases/{release_id}/withdraw"
        return _read(ReleaseCard, self._t.call("POST", path, json={"reason": reason}))

    def samples(
        self,
        release_id: str,
        n: int,
        *,
        seed: int | None = None,
        where: dict[str, Any] | None = None,
        progress: bool = False,
    ) -> pd.DataFrame:
        """``n`` synthetic rows as a DataFrame (streamed as Parquet; a stream that ends
        short raises TruncatedDownload)."""
        return self.samples_arrow(
            release_id, n, seed=seed, where=where, progress=progress
        ).to_pandas()

    def samples_arrow(self, release_id: str, n: int, **options: Any) -> Any:
        """The rows as a pyarrow Table."""
        return stream_samples(self._t, release_id, n, **options)

    # schedules
    def create_schedule(
        self, dataset_id: str, cron: str, *, epsilon: float, auto_release: bool = False,
        **job: Any,
    ) -> ScheduleView:  # fmt: skip
        """Retrain at each fire time of ``cron`` (made once, however often retried)."""
        body = {"dataset_id": dataset_id, "cron": cron, "auto_release": auto_release,
                "job": {"epsilon": epsilon, **job}}  # fmt: skip
        return _read(ScheduleView, self._t.call("POST", "/v1/schedules", json=body,
                                                idempotent=True))  # fmt: skip

    def schedule(self, schedule_id: str) -> ScheduleView:
        return _read(ScheduleView, self._t.call("GET", f"/v1/schedules/{schedule_id}"))

    def schedules(self, **filters: Any) -> Iterator[ScheduleView]:
        return self._pages("/v1/schedules", ScheduleView, **filters)

    def update_schedule(self, schedule_id: str, **changes: Any) -> ScheduleView:
        """Any of ``cron``, ``job``, ``auto_release``, ``state`` (active or paused)."""
        body = self._t.call("PATCH", f"/v1/schedules/{schedule_id}", json=changes)
        return _read(ScheduleView, body)

    def pause(self, schedule_id: str) -> ScheduleView:
        return self.update_schedule(schedule_id, state="paused")

    def resume(self, schedule_id: str) -> ScheduleView:
        return self.update_schedule(schedule_id, state="active")

    def delete_schedule(self, schedule_id: str) -> ScheduleView:
        return _read(ScheduleView, self._t.call("DELETE", f"/v1/schedules/{schedule_id}"))

    # auditors
    def audit_events(self, **filters: Any) -> Iterator[AuditEventView]:
        """``action``, ``target``, ``order`` (newest, oldest), ``since``, ``until``."""
        return self._pages("/v1/audit-log", AuditEventView, **filters)

    def audit_heads(self) -> list[AuditHeadView]:
        """Each chain's last (seq, hash): anchors to write down for later checks."""
        return [_read(AuditHeadView, h) for h in self._t.call("GET", "/v1/audit-log/heads")]

    def export_audit_log(
        self,
        out: str | os.PathLike[str],
        *,
        format: Literal["jsonl", "csv"] = "jsonl",
        since: str | None = None,
        until: str | None = None,
    ) -> int:
        """Write the export to ``out`` (streamed); the bytes written."""
        params = _clean({"format": format, "since": since, "until": until})
        written = 0
        with (
            open(out, "wb") as sink,
            self._t.http.stream("GET", "/v1/audit-log/export", params=params) as response,
        ):
            raise_for_problem(response)
            for chunk in response.iter_bytes():
                written += sink.write(chunk)
        return written
