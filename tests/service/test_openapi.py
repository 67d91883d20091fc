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
