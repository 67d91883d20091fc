"""``/docs``: Swagger UI served from the package, so an air-gapped deployment (the likely
kind for this product) has working API docs; FastAPI's default loads it from a CDN and
the page was blank offline. Its page is held to a CSP that lets it load nothing from
outside this server."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_CSP", "mount_docs"]

ASSETS = "/docs/assets"
# Swagger UI 5 as fastapi-offline ships it (swagger-ui-bundle's 4.x cannot read OpenAPI
# 3.1, which FastAPI writes: the page said "does not specify a valid version field")
STATIC = resources.files("fastapi_offline") / "static"
# the inline script is Swagger UI's start-up call (FastAPI's page template)
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def mount_docs(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=str(STATIC)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="Sanitas API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"defaultModelsExpandDepth": 0, "displayOperationId": True},
        )  # fmt: skip
