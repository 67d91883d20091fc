"""What every console page shares: the signed-in user, the CSRF check on forms, the
templates (autoescaped: every string on a page came from some user) and error pages."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from service.console.api_calls import Api, ApiError
from service.http.console_sessions import COOKIE, SignedIn, csrf_matches, find_session

__all__ = [
    "ConsoleError",
    "SignInNeeded",
    "api_for",
    "checked_form",
    "render",
    "seg",
    "signed_in",
    "templates",
]

logger = logging.getLogger(__name__)

templates = Environment(
    loader=PackageLoader("service.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class ConsoleError(Exception):
    """A page that cannot be shown: its status and why, in words."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class SignInNeeded(Exception):
    """No live session: the browser goes to the sign-in page (then back)."""


def seg(value: str) -> str:
    """One URL path segment from a user's string (an id typed into an address)."""
    return quote(value, safe="")


async def signed_in(request: Request) -> SignedIn:
    """The session's user, read from the database on every request: a signed-out,
    expired or revoked one is sent to sign in."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInNeeded
    sessions = request.app.state.sessions

    def lookup() -> SignedIn | None:
        with sessions() as s:
            return find_session(s, token)

    found = await run_in_threadpool(lookup)
    if found is None:
        raise SignInNeeded
    request.state.console_who = found  # for the error page
    return found


def api_for(request: Request, who: SignedIn) -> Api:
    return Api(request, who.principal)


async def checked_form(request: Request, who: SignedIn) -> FormData:
    """The posted form, refused (403) unless it carries the session's CSRF token."""
    form = await request.form()
    sent = form.get("csrf")
    if not csrf_matches(who, sent if isinstance(sent, str) else None):
        raise ConsoleError(403, "Forbidden", "the form's CSRF token is missing or wrong: "
                           "reload the page and send it again")  # fmt: skip
    return form


def render(
    request: Request, name: str, who: SignedIn | None, status: int = 200, **context: Any
) -> HTMLResponse:
    page = templates.get_template(name).render(
        who=who, role=who.role.value if who else None, path=request.url.path, **context
    )
    return HTMLResponse(page, status_code=status)


def error_page(
    request: Request, exc: ConsoleError | ApiError, who: SignedIn | None
) -> HTMLResponse:
    return render(request, "error.html", who, exc.status, title=exc.title, detail=exc.detail)


def back_to_sign_in(request: Request) -> RedirectResponse | HTMLResponse:
    target = "/console/sign-in?next=" + quote(request.url.path, safe="/")
    if request.headers.get("hx-request"):  # a partial update: send the whole page there
        return HTMLResponse("", status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
