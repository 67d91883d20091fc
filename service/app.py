"""The FastAPI app factory: all state lives on ``app.state``, built here, nowhere global."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evaluation.report import CONTENT_SECURITY_POLICY  # a string: no ML import
from service.api import (
    audit_log,
    dataset_schema,
    datasets,
    jobs,
    keys,
    models,
    releases,
    schedules,
    system,
)
from service.api.docs_ui import DOCS_CSP, mount_docs
from service.api.openapi_docs import document
from service.audit_chain import make_sessionmaker
from service.console import CONSOLE_CSP, REPORT_FRAME_CSP, REPORT_FRAME_PATH, mount_console
from service.db import make_engine
from service.http.auth import CONSOLE_SCOPE, lookup_key
from service.http.console_sessions import session_alive
from service.http.guards import BodyGuard, RefusalLimiter
from service.http.problems import PROBLEM_RESPONSES, install_problem_handlers
from service.http.strict_query import known_query_parameters
from service.jobs.runner import CeleryRunner, JobContext, LocalRunner, Runner
from service.jobs.sweep import sweep
from service.migrate import upgrade
from service.sampling.download_slots import DownloadSlots
from service.sampling.samplers import SamplerPool
from service.settings import Settings
from service.storage.encrypted import load_key
from service.storage.object_store import from_settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "sanitas_http_requests", "HTTP requests", ["method", "status"], registry=self.registry
        )
        self.jobs = Gauge("sanitas_jobs", "jobs by state", ["state"], registry=self.registry)


class CountRequests:
    """Counts responses by method and status: plain ASGI, since Starlette's
    BaseHTTPMiddleware (``@app.middleware``) cost a task and a stream per request."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app, self.counter = app, counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counter.labels(scope["method"], str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting)


# API responses are JSON, CSV or a report page: nothing in them may run script or load
# anything (a report is drawn from the uploader's strings), so every response carries
# the report's own policy; the OpenAPI pages need their own script and are left to
# FastAPI's defaults
API_CSP = CONTENT_SECURITY_POLICY
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
DOCS_PATHS = ("/docs",)


# (CSP, X-Frame-Options) by kind of page, encoded once: the headers go on every response
API_POLICY = (API_CSP.encode(), b"DENY")
DOCS_POLICY = (DOCS_CSP.encode(), b"DENY")
CONSOLE_POLICY = (CONSOLE_CSP.encode(), b"DENY")
REPORT_FRAME_POLICY = (REPORT_FRAME_CSP.encode(), b"SAMEORIGIN")


def _policy(path: str) -> tuple[bytes, bytes]:
    """The page's CSP and X-Frame-Options: only the console's report frame may be
    framed, and only by the console itself."""
    if path.startswith("/console"):
        return REPORT_FRAME_POLICY if REPORT_FRAME_PATH.match(path) else CONSOLE_POLICY
    return DOCS_POLICY if path.startswith(DOCS_PATHS) else API_POLICY


class SecurityHeaders:
    """Security headers on every response, and no ``Server`` banner (plain ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # the console's own calls into the API: the console's response gets the headers
        if scope["type"] != "http" or scope.get(CONSOLE_SCOPE) is not None:
            await self.app(scope, receive, send)
            return
        policy, frame = _policy(scope["path"])

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v) for k, v in message.get("headers", [])
                    if k.lower() not in (b"server", b"content-security-policy", b"x-frame-options")
                ]  # fmt: skip
                extra = [(b"content-security-policy", policy), (b"x-frame-options", frame)]
                message = {**message, "headers": [*kept, *SECURITY_HEADERS, *extra]}
            await send(message)

        await self.app(scope, receive, headed)


def create_app(settings: Settings | None = None, *, scheduler: bool = True) -> FastAPI:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    objects = from_settings(settings)  # before a key file could be made for a shared bucket
    if settings.is_sqlite:
        upgrade(settings.sqlalchemy_url)  # PostgreSQL: `sanitas db upgrade`
    engine = make_engine(settings.sqlalchemy_url)
    # SQLite: API keys are read on the event loop through one connection of their own
    key_reader = make_engine(settings.sqlalchemy_url, static=True) if settings.is_sqlite else None
    sessions = make_sessionmaker(engine)
    key = _server_key(settings)
    sweep(settings.data_dir, sessions, stale_seconds=settings.partial_stale_seconds)
    ctx = JobContext(settings=settings, sessions=sessions, key=key, objects=objects)
    runner: Runner = (
        CeleryRunner(settings.broker_url)
        if settings.broker_url
        else LocalRunner(ctx, settings.worker_threads)
    )
    stop = threading.Event()
    sampler_pool = SamplerPool()

    lifespan = _lifespan(settings, ctx, runner, stop, sampler_pool, [engine, key_reader], scheduler)
    docs = settings.expose_docs
    app = FastAPI(
        title="Sanitas", version="0.1.0", lifespan=lifespan,
        docs_url=None, redoc_url=None,  # /docs from the package's assets (mount_docs)
        openapi_url="/openapi.json" if docs else None,
        description="Differentially private synthetic data. No route returns a "
        "real row; no job trains past its dataset's privacy budget.",
    )  # fmt: skip
    app.state.settings, app.state.sessions, app.state.key = settings, sessions, key
    app.state.runner, app.state.ctx, app.state.metrics = runner, ctx, Metrics()
    app.state.objects, app.state.sampler_pool = objects, sampler_pool
    app.state.samplers = DownloadSlots(
        settings.max_concurrent_samplers, per_key=settings.samplers_per_key,
        per_project=settings.samplers_per_project,
    )  # fmt: skip
    app.state.engine, app.state.key_reader = engine, key_reader
    app.state.release_cards = releases.ReleaseCards()
    install_problem_handlers(app)
    _routes(app, docs=docs)
    mount_console(app)
    _guard(app, settings, engine, key_reader)
    return app


ROUTERS = (system, datasets, dataset_schema, jobs, models, releases, schedules, audit_log, keys)


def _server_key(settings: Settings) -> bytes:
    legacy = settings.data_dir / "secret.key"
    if (
        settings.encryption_key is None
        and settings.key_file is None
        and (settings.key_path == legacy)
    ):
        logger.warning("the key file %s sits beside the data it protects: move it and set "
                       "SANITAS_KEY_FILE (docs/operations.md)", legacy)  # fmt: skip
    return load_key(settings.encryption_key, settings.key_path)


def _routes(app: FastAPI, *, docs: bool) -> None:
    """Every router (unknown query parameters refused), /docs from the package's assets,
    and the OpenAPI document with what service.api.openapi_docs tells users."""
    if docs:
        mount_docs(app)
    generated = app.openapi

    def described() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(generated())
        return app.openapi_schema

    app.openapi = described  # type: ignore[method-assign]
    for module in ROUTERS:
        app.include_router(
            module.router, responses=PROBLEM_RESPONSES,
            dependencies=[Depends(known_query_parameters)],
        )  # fmt: skip


def _guard(app: FastAPI, settings: Settings, engine: Any, key_reader: Any) -> None:
    """What runs before any route: the body guard (keys on headers, bounded bodies,
    refusals rate-limited), request counting, security headers on every response."""
    app.state.refusals = RefusalLimiter(settings.refusals_per_minute)
    app.add_middleware(
        BodyGuard, lookup=functools.partial(lookup_key, key_reader or engine),
        console_session=functools.partial(session_alive, key_reader or engine),
        lookup_on_loop=key_reader is not None,
        max_upload_bytes=settings.max_upload_bytes, max_json_bytes=settings.max_json_bytes,
        read_seconds=settings.body_read_seconds, refusals=app.state.refusals,
    )  # fmt: skip
    app.add_middleware(CountRequests, counter=app.state.metrics.requests)
    app.add_middleware(SecurityHeaders)


def _lifespan(
    settings: Settings,
    ctx: JobContext,
    runner: Runner,
    stop: threading.Event,
    sampler_pool: SamplerPool,
    engines: list[Any],
    scheduler: bool,
) -> Any:
    """Start the runner and the scheduler with the app; stop them, the sampler pool and
    the engines with it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # sync routes run in anyio's threadpool; fewer threads than its 40 keep them from
        # convoying on the GIL with the event loop (release-card p95 under load: 61 ms
        # with 40 threads, 34 ms with 16; benchmarks/load.py)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        runner.start()
        if scheduler:
            from service.jobs.scheduler import run_loop

            threading.Thread(
                target=run_loop, args=(ctx, runner, stop), daemon=True, name="sanitas-scheduler"
            ).start()
        yield
        stop.set()
        runner.stop()
        sampler_pool.stop()
        for engine in engines:
            if engine is not None:
                engine.dispose()

    return lifespan
