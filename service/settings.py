"""Service settings from the environment (prefix ``SANITAS_``), via pydantic-settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_data_dir", "default_key_file"]


def _xdg(variable: str, fallback: str) -> Path:
    configured = os.environ.get(variable)
    return Path(configured) if configured else Path.home() / fallback


def default_data_dir() -> Path:
    """One place whatever folder a command runs in: ``$XDG_DATA_HOME/sanitas``
    (~/.local/share/sanitas). A relative default made each folder its own server: a key
    created in one got 401 from a server started in another."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "sanitas"


def default_key_file() -> Path:
    """Apart from the data: ``$XDG_CONFIG_HOME/sanitas/secret.key``
    (~/.config/sanitas/secret.key), so a copy of the data directory is not also its key."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "sanitas" / "secret.key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANITAS_", extra="ignore")

    @property
    def key_path(self) -> Path:
        if self.key_file is not None:
            return self.key_file
        legacy = self.data_dir / "secret.key"
        return legacy if legacy.exists() else default_key_file()

    data_dir: Path = Field(default_factory=default_data_dir)
    # default: SQLite under data_dir; PostgreSQL: postgresql+psycopg://user@host/db
    database_url: str | None = None
    # datasets (encrypted), models and reports: data_dir when unset; an S3-compatible
    # bucket with s3://bucket/prefix (pip install 'sanitas[s3]'), then data_dir holds
    # only the node's cache and job scratch. Options go to fsspec, e.g.
    # SANITAS_STORAGE_OPTIONS='{"endpoint_url": "http://minio:9000"}'; credentials come
    # from the usual AWS_* variables
    storage_url: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    # 32 random bytes, base64 (urlsafe); without it the embedded server reads key_file,
    # or makes it (0600) on first start and says so in the log
    encryption_key: str | None = None
    # where that key is kept: default_key_file(), apart from data_dir (a key file left in
    # data_dir by an older version is still read there, with a warning to move it)
    key_file: Path | None = None
    # keys being rotated out (same format, a JSON list): datasets still under one of
    # them stay readable until `sanitas encryption rotate` has moved them to the key above
    previous_encryption_keys: list[str] = Field(default_factory=list)
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_zip_ratio: float = Field(default=100.0, gt=1)
    broker_url: str | None = None  # Celery over Redis when set; in-process worker otherwise
    job_lease_seconds: float = Field(default=120.0, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    worker_threads: int = Field(default=1, ge=0)  # in-process workers (0: none, e.g. tests)
    max_sample_rows: int = Field(default=10_000_000, gt=0)
    # a table job needs this many rows: a fifth is held out for the evaluation
    min_job_rows: int = Field(default=500, ge=10)
    request_threads: int = Field(default=16, ge=1)  # threads for sync routes (anyio)
    # forked samplers at once (each holds a model and its output chunks); more downloads
    # wait up to sampler_wait_seconds for a slot, then get 503 with Retry-After
    max_concurrent_samplers: int = Field(default=4, ge=1)
    sampler_wait_seconds: float = Field(default=60.0, ge=0)
    # shares of those slots: one key, one project (so one consumer cannot hold them all),
    # and how long a download whose client reads nothing keeps its sampler
    samplers_per_key: int = Field(default=2, ge=1)
    samplers_per_project: int = Field(default=3, ge=1)
    download_stall_seconds: float = Field(default=60.0, gt=0)
    # DDP processes per DP-SGD training job on this worker (one per GPU on the node, or
    # CPU processes); generators whose registry entry supports DDP use them
    training_devices: int = Field(default=1, ge=1, le=64)
    # leftovers of killed processes older than this are swept at start-up
    partial_stale_seconds: float = Field(default=600.0, ge=0)
    # deployments that want them closed: the OpenAPI pages (/docs, /redoc, /openapi.json)
    # and Prometheus' /metrics answer 404 when false
    expose_docs: bool = True
    expose_metrics: bool = True
    # bodies other than uploads (JSON requests), and the longest wait for the next chunk
    max_json_bytes: int = Field(default=1024**2, gt=0)
    body_read_seconds: float = Field(default=30.0, gt=0)
    # a connection's request line and headers must arrive whole within this (serve)
    header_read_seconds: float = Field(default=10.0, gt=0)
    # refused requests (bad key, too large, too slow) answered and audited per client
    # and minute; past that 429, not audited
    refusals_per_minute: int = Field(default=60, ge=1)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sanitas.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")
