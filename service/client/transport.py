"""One HTTP exchange with retries: what every call of the client goes through.

Retried: transport errors and 503 (honouring ``Retry-After``, capped), with backoff.
A POST that charges or creates carries an ``Idempotency-Key`` made once per call and
sent again on each retry, so a retry after a lost answer is charged once.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import httpx

from service.client.errors import error_for

__all__ = ["Transport", "raise_for_problem"]

logger = logging.getLogger(__name__)
MAX_WAIT = 30.0


class Transport:
    def __init__(self, url: str, key: str, *, timeout: float, retries: int) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )
        self.retries = retries

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, idempotent: bool = False, **kwargs: Any) -> Any:
        """The JSON answer of one call; ApiError (by kind) for a problem answer."""
        response = self.send(method, path, idempotent=idempotent, **kwargs)
        return response.json() if response.content else None

    def send(self, method: str, path: str, *, idempotent: bool = False, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as e:
                if last or not (idempotent or method == "GET" or _unsent(e)):
                    raise
                self._pause(attempt, None, f"{type(e).__name__}: {e}")
                continue
            if response.status_code == 503 and not last:
                self._pause(attempt, response.headers.get("Retry-After"), "503")
                continue
            raise_for_problem(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause(self, attempt: int, retry_after: str | None, why: str) -> None:
        wait = min(float(retry_after) if retry_after else 0.5 * 2**attempt, MAX_WAIT)
        logger.info("retrying in %.1f s after %s", wait, why)
        time.sleep(wait)


def _unsent(error: httpx.TransportError) -> bool:
    """The request never reached the server: safe to send again whatever it does."""
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    response.read()
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    raise error_for(response.status_code, body) from None
