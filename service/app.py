"""The FastAPI app factory: all state lives on ``app.state``, built here, nowhere global."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio.to_thread
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import audit_log, datasets, jobs, models, releases, schedules, system
from service.db import make_engine, make_sessionmaker
from service.migrate import upgrade
from service.object_store import from_settings
from service.problems import PROBLEM_RESPONSES, install_problem_handlers
from service.runner import CeleryRunner, JobContext, LocalRunner, Runner
from service.samplers import SamplerPool
from service.settings import Settings
from service.storage import load_key
from service.sweep import sweep

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
    key = load_key(settings.encryption_key, settings.data_dir)
    sweep(settings.data_dir, sessions, stale_seconds=settings.partial_stale_seconds)
    ctx = JobContext(settings=settings, sessions=sessions, key=key, objects=objects)
    runner: Runner = (
        CeleryRunner(settings.broker_url)
        if settings.broker_url
        else LocalRunner(ctx, settings.worker_threads)
    )
    stop = threading.Event()
    sampler_pool = SamplerPool()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # sync routes run in anyio's threadpool; fewer threads than its 40 keep them from
        # convoying on the GIL with the event loop (release-card p95 under load: 61 ms
        # with 40 threads, 34 ms with 16; benchmarks/load.py)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        runner.start()
        if scheduler:
            from service.scheduler import run_loop

            threading.Thread(
                target=run_loop, args=(ctx, runner, stop), daemon=True, name="sanitas-scheduler"
            ).start()
        yield
        stop.set()
        runner.stop()
        sampler_pool.stop()
        engine.dispose()
        if key_reader is not None:
            key_reader.dispose()

    app = FastAPI(
        title="Sanitas",
        version="0.1.0",
        lifespan=lifespan,
        description="Differentially private synthetic data. No route returns a "
        "real row; no job trains past its dataset's privacy budget.",
    )
    app.state.settings, app.state.sessions, app.state.key = settings, sessions, key
    app.state.runner, app.state.ctx, app.state.metrics = runner, ctx, Metrics()
    app.state.objects = objects
    app.state.samplers = asyncio.Semaphore(settings.max_concurrent_samplers)
    app.state.sampler_pool = sampler_pool
    app.state.engine, app.state.key_reader = engine, key_reader
    app.state.release_cards = releases.ReleaseCards()
    install_problem_handlers(app)
    for module in (system, datasets, jobs, models, releases, schedules, audit_log):
        app.include_router(module.router, responses=PROBLEM_RESPONSES)

    app.add_middleware(CountRequests, counter=app.state.metrics.requests)
    return app
