"""The web console (issue 23): server-rendered pages for owners, auditors and consumers,
served by ``sanitas serve`` under /console, working offline.

Pages are Jinja2 templates (autoescaped) with htmx, vendored in ``static/``, for the
live parts; the budget chart is SVG drawn on the server. Nothing is loaded from outside
the server (CONSOLE_CSP). Sign-in turns an API key into an HttpOnly, SameSite=Strict
session cookie; every form carries the session's CSRF token. Every page reads and acts
through the API in process (``api_calls``), so the API's rules are the console's rules.
"""

from __future__ import annotations

import re
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from evaluation.report import CONTENT_SECURITY_POLICY as REPORT_CSP  # a string: no ML import
from service.console import (
    audit_pages,
    owner_pages,
    release_pages,
    schedule_pages,
    sign_in,
)
from service.console.api_calls import ApiError
from service.console.common import ConsoleError, SignInNeeded, back_to_sign_in, error_page

__all__ = [
    "CONSOLE_CSP",
    "PAGES",
    "REPORT_FRAME_CSP",
    "REPORT_FRAME_PATH",
    "mount_console",
]

CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# the report as the job page frames it: the report's own policy, framed by the console only
REPORT_FRAME_CSP = REPORT_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
REPORT_FRAME_PATH = re.compile(r"^/console/models/[^/]+/report$")
STATIC = resources.files("service.console") / "static"
PAGES = (sign_in, owner_pages, release_pages, schedule_pages, audit_pages)


def mount_console(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=str(STATIC)), name="console-static")
    for module in PAGES:
        app.include_router(module.router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, _: Exception) -> Response:
        return back_to_sign_in(request)

    @app.exception_handler(ConsoleError)
    @app.exception_handler(ApiError)
    async def _error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ConsoleError | ApiError):
            raise exc
        return error_page(request, exc, getattr(request.state, "console_who", None))
