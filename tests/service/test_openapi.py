"""The served OpenAPI types every answer: a response schema for each 2xx of each route,
an operation id chosen by hand (not FastAPI's path-derived default), and the job's
generator enum from the registry."""

from __future__ import annotations

import re

from training import registry


def test_every_success_has_a_schema_and_every_route_a_chosen_operation_id(api):
    spec = api.client.get("/openapi.json").json()
    ids, unschemed = [], []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            for code, response in operation["responses"].items():
                content = response.get("content", {})
                if code.startswith("2") and (
                    not content or not all("schema" in v for v in content.values())
                ):
                    unschemed.append(f"{method.upper()} {path} {code}")
    assert not unschemed
    assert len(ids) == len(set(ids)) >= 21
    derived = [i for i in ids if re.search(r"_(get|post|patch|delete)$", i) or "__" in i]
    assert not derived  # FastAPI's default ids end in the method and double underscores
    generator = spec["components"]["schemas"]["JobRequest"]["properties"]["generator"]
    assert registry.names() == generator["anyOf"][0]["enum"]
    assert all(e.summary in generator["anyOf"][0]["description"] for e in registry.entries())
    card = spec["components"]["schemas"]["ReleaseCard"]["properties"]
    assert {"epsilon", "covered_by_epsilon", "not_covered_by_epsilon"} <= set(card)


def test_every_operation_is_described_for_users_with_links_along_the_main_path(api):
    """Issue 22: each operation says what it does and who may call it (4 of 21 had a
    description, two of them internal notes); links lead upload -> job -> model ->
    release -> samples; the requests that charge or create carry an example."""
    from service.api.openapi_docs import OPERATIONS

    spec = api.client.get("/openapi.json").json()
    operations = {op["operationId"]: op for ops in spec["paths"].values() for op in ops.values()}
    assert set(operations) == set(OPERATIONS)  # a new route must be described here
    for op_id, op in operations.items():
        assert op["summary"] and len(op["description"]) >= 40, op_id
        assert "session" not in op["description"] and "``" not in op["description"], op_id
    chain = [("uploadDataset", "201", "train"), ("createJob", "202", "poll"),
             ("getJob", "200", "model"), ("getModel", "200", "release"),
             ("createRelease", "201", "samples")]  # fmt: skip
    for op_id, status, name in chain:
        target = operations[op_id]["responses"][status]["links"][name]["operationId"]
        assert target in operations, (op_id, target)
    assert operations["sampleRelease"]["responses"]["200"]["content"].keys() >= {
        "text/csv",
        "application/x-ndjson",
    }
    body = operations["createJob"]["requestBody"]["content"]["application/json"]
    assert body["example"]["epsilon"] == 1.0


def test_swagger_ui_works_offline_from_the_package_in_a_real_browser(live_server):
    """/docs loads Swagger UI from the server itself (it came from a CDN: blank
    air-gapped); its CSP lets the page load nothing from elsewhere, and headless Chromium
    draws every operation from it."""
    import shutil
    import subprocess

    import httpx

    page = httpx.get(f"{live_server.url}/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    asset = httpx.get(f"{live_server.url}/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 500_000
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian package chromium is required (make test installs it)"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
         "--dump-dom", f"{live_server.url}/docs"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "Sanitas" in dom and "uploadDataset" in dom and "sampleRelease" in dom
