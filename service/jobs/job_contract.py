"""The job interface between the service and a job's child process, typed once.

Why: the runner, the job child and the model registration agreed only on dict keys and
file names (``spec.json``, ``result.json``, ``model/``, ``report/``, ``stderr.log``), and
progress events were built in one file and parsed in another. Here the workspace's
paths are named once and the three messages that cross it (the spec the service
writes, the progress lines the child prints, the result it leaves) are pydantic models
both sides import. Pydantic and the standard library only: the API process imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["JobOptions", "JobResult", "JobSpec", "JobWorkspace", "Progress"]


class JobOptions(BaseModel):
    """What the owner asked of the run, as stored on the job (``Job.spec``).

    Unknown keys are ignored on reading, so jobs stored by older versions still run;
    the API's request model is the strict one.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    generator: str
    epsilon: float | None
    delta: float
    epochs: int | None = None
    calibration_share: float | None = None
    target_column: str | None = None
    audit: bool = False
    report_real_images: bool = True


class JobSpec(BaseModel):
    """What the service writes for the child: where the plaintext is, its confirmed
    schema (public metadata), and the options."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    data: str
    table_schema: dict[str, Any] = Field(alias="schema")
    job: JobOptions
    # what the report covers: dataset (id, name, version), job and model ids
    subject: dict[str, Any] = Field(default_factory=dict)


class JobResult(BaseModel):
    """What the child leaves for the model's registration."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    generator: str
    privacy: dict[str, Any]
    table_schema: dict[str, Any] = Field(alias="schema")
    gates: list[dict[str, Any]]
    passed: bool


class Progress(BaseModel):
    """One line the child prints on stdout: how far, and what it is doing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    progress: float = Field(ge=0, le=1)
    message: str

    def line(self) -> str:
        return json.dumps({"progress": round(self.progress, 4), "message": self.message}) + "\n"

    @classmethod
    def parse(cls, line: str) -> Progress:
        return cls.model_validate_json(line)


class JobWorkspace:
    """A job's directory in the data directory: every file the two sides share."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def spec(self) -> Path:
        return self.directory / "spec.json"

    @property
    def result(self) -> Path:
        return self.directory / "result.json"

    @property
    def model(self) -> Path:
        return self.directory / "model"

    @property
    def report(self) -> Path:
        return self.directory / "report"

    @property
    def stderr(self) -> Path:
        return self.directory / "stderr.log"

    @property
    def encrypted(self) -> Path:
        return self.directory / "data.enc"

    def data(self, fmt: str) -> Path:
        """The plaintext copy (deleted when the job ends; ``sweep`` removes leftovers)."""
        return self.directory / f"data.{fmt}"

    def write_spec(self, spec: JobSpec) -> None:
        self.spec.write_text(spec.model_dump_json(by_alias=True))

    def read_spec(self) -> JobSpec:
        return JobSpec.model_validate_json(self.spec.read_text())

    def write_result(self, result: JobResult) -> None:
        self.result.write_text(result.model_dump_json(by_alias=True))

    def read_result(self) -> JobResult:
        return JobResult.model_validate_json(self.result.read_text())
