"""Unknown query parameters are refused, never ignored.

A client that writes ``?limt=10`` or ``?sed=3`` and gets an answer believes it was
heeded; on a route that charges or samples that is a silent wrong result. FastAPI drops
undeclared parameters, so every router carries this dependency: it compares what the
request sent with what the matched route (and its dependencies) declares.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant

from service.errors import Problem

__all__ = ["known_query_parameters"]


def known_query_parameters(request: Request) -> None:
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _declared(dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise Problem(
            422,
            "Unknown Query Parameter",
            f"query parameters {unknown} are not taken by this route (it takes: {takes})",
        )


def _declared(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names
