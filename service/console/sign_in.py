"""Sign in with an API key (or a one-time link), sign out, and the landing page."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.console.common import checked_form, render, signed_in
from service.http.auth import lookup_key
from service.http.console_sessions import (
    COOKIE,
    SESSION_HOURS,
    SignedIn,
    end_session,
    redeem_link,
    start_session,
)
from service.http.guards import client_of
from service.http.problems import TOO_MANY_REFUSALS

__all__ = ["router"]

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)
MAX_KEY = 512  # a Sanitas key is 47 characters


def _next_page(value: str | None) -> str:
    """Only a console page of this server: never an address elsewhere (open redirect)."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console"


def _signed_in_answer(request: Request, token: str, response: Response) -> Response:
    response.set_cookie(
        COOKIE, token, max_age=SESSION_HOURS * 3600, path="/console", httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "sign_in.html", None, next=_next_page(next), error=None)


def _from_this_site(request: Request) -> bool:
    """Whether the sign-in form was posted by a page of this server. The form has no
    session yet, so no CSRF token: without this, another site could post its own key
    into a visitor's browser (login CSRF), and the visitor would then upload their data
    into that site's project. Browsers say where a POST came from (Sec-Fetch-Site,
    Origin); a client that says neither (curl, a test) is not a browser being misled.
    Sec-Fetch-Site first: under this server's ``Referrer-Policy: no-referrer`` a browser
    sends ``Origin: null`` even for its own pages' forms."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlparse(origin).netloc == request.headers.get("host", "")


@router.post("/sign-in")
async def sign_in(
    request: Request,
    key: Annotated[str, Form(max_length=MAX_KEY)],
    next: Annotated[str | None, Form(max_length=500)] = None,
) -> Response:
    if not _from_this_site(request):
        return render(request, "sign_in.html", None, 403, next="/console",
                      error="sign in from this server's own sign-in page")  # fmt: skip
    sessions, engine = request.app.state.sessions, request.app.state.engine

    def start() -> str | None:
        row = lookup_key(engine, key.strip())
        if row is None or row.revoked_at is not None:
            return None
        with sessions() as s:
            return start_session(s, row.id, via="key")

    token = await run_in_threadpool(start)
    if token is None:
        if not request.app.state.refusals.allow(client_of(request.scope)):
            return render(request, "sign_in.html", None, 429, next=_next_page(next),
                          error=TOO_MANY_REFUSALS)  # fmt: skip
        logger.info("console sign-in refused: unknown or revoked key")
        return render(request, "sign_in.html", None, 401, next=_next_page(next),
                      error="unknown or revoked API key")  # fmt: skip
    return _signed_in_answer(request, token, RedirectResponse(_next_page(next), status_code=303))


@router.get("/sign-in/{link}")
async def sign_in_by_link(request: Request, link: str) -> Response:
    """A one-time link. The answer is a page that moves on by itself: a SameSite=Strict
    cookie set while following a link from elsewhere (a terminal, a mail) is not sent
    with a redirect of that same navigation, only with the page's own next request."""
    sessions = request.app.state.sessions

    def redeem() -> str | None:
        with sessions() as s:
            key_id = redeem_link(s, link[:200])
            return start_session(s, key_id, via="link") if key_id else None

    token = await run_in_threadpool(redeem)
    if token is None:
        return render(request, "sign_in.html", None, 401, next="/console",
                      error="this sign-in link is unknown, used or expired")  # fmt: skip
    return _signed_in_answer(request, token, render(request, "moving_on.html", None))


@router.post("/sign-out")
async def sign_out(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    await checked_form(request, who)
    sessions, token = request.app.state.sessions, request.cookies.get(COOKIE)

    def end() -> None:
        with sessions() as s:
            end_session(s, token)

    await run_in_threadpool(end)
    answer = RedirectResponse("/console/sign-in", status_code=303)
    answer.delete_cookie(COOKIE, path="/console")
    return answer


@router.get("")
async def home(who: SignedIn = Depends(signed_in)) -> RedirectResponse:
    first = "/console/releases" if who.role.value == "consumer" else "/console/datasets"
    return RedirectResponse(first, status_code=303)
