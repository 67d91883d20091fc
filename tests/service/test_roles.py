"""Every route of the OpenAPI spec, walked with every role.

The table below is the authorization contract: a new route fails this test until it
is added here. A role outside a route's set gets 403; no key gets 401; a key of
another project gets 404 for a resource by id (its existence must not leak).
"""

import pytest

OWNER, CONSUMER, AUDITOR, ADMIN = "owner", "consumer", "auditor", "admin"
ROLES = (OWNER, CONSUMER, AUDITOR, ADMIN)
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
CONTRACT = {
    ("POST", "/v1/datasets"): {OWNER, ADMIN},
    ("GET", "/v1/datasets"): {OWNER, AUDITOR, ADMIN},
    ("GET", "/v1/datasets/{dataset_id}"): {OWNER, AUDITOR, ADMIN},
    ("DELETE", "/v1/datasets/{dataset_id}"): {OWNER, ADMIN},
    ("PATCH", "/v1/datasets/{dataset_id}/schema"): {OWNER, ADMIN},
    ("POST", "/v1/datasets/{dataset_id}/versions"): {OWNER, ADMIN},
    ("GET", "/v1/datasets/{dataset_id}/budget"): {OWNER, AUDITOR, ADMIN},
    ("POST", "/v1/jobs"): {OWNER, ADMIN},
    ("GET", "/v1/jobs"): {OWNER, AUDITOR, ADMIN},
    ("GET", "/v1/jobs/{job_id}"): {OWNER, AUDITOR, ADMIN},
    ("POST", "/v1/jobs/{job_id}/cancel"): {OWNER, ADMIN},
    ("GET", "/v1/models"): {OWNER, AUDITOR, ADMIN},
    ("GET", "/v1/models/{model_id}"): {OWNER, AUDITOR, ADMIN},
    ("GET", "/v1/models/{model_id}/report"): {OWNER, AUDITOR, ADMIN},
    ("POST", "/v1/releases"): {OWNER, ADMIN},
    ("GET", "/v1/releases"): {OWNER, CONSUMER, AUDITOR, ADMIN},
    ("GET", "/v1/releases/{release_id}"): {OWNER, CONSUMER, AUDITOR, ADMIN},
    ("GET", "/v1/releases/{release_id}/samples"): {OWNER, CONSUMER, ADMIN},
    ("POST", "/v1/releases/{release_id}/withdraw"): {OWNER, ADMIN},
    ("POST", "/v1/schedules"): {OWNER, ADMIN},
    ("GET", "/v1/schedules"): {OWNER, AUDITOR, ADMIN},
    ("GET", "/v1/schedules/{schedule_id}"): {OWNER, AUDITOR, ADMIN},
    ("PATCH", "/v1/schedules/{schedule_id}"): {OWNER, ADMIN},
    ("DELETE", "/v1/schedules/{schedule_id}"): {OWNER, ADMIN},
    ("GET", "/v1/audit-log"): {AUDITOR, ADMIN},
    ("GET", "/v1/audit-log/heads"): {AUDITOR, ADMIN},
    ("GET", "/v1/audit-log/export"): {AUDITOR, ADMIN},
    ("POST", "/v1/keys"): {ADMIN},
    ("GET", "/v1/keys"): {ADMIN},
    ("POST", "/v1/keys/{key_id}/revoke"): {ADMIN},
}


def _routes(api):
    spec = api.client.get("/openapi.json").json()
    return [(m.upper(), path) for path, ops in spec["paths"].items() for m in ops]


def test_the_contract_covers_every_route(api):
    routes = set(_routes(api))
    assert routes - PUBLIC == set(CONTRACT), "add new routes to CONTRACT"


def test_every_route_answers_each_role_as_the_contract_says(api_factory):
    # refusals not rate-limited: the walk makes more than a minute's allowance of them
    api = api_factory(worker_threads=0, refusals_per_minute=1_000_000)
    for method, path in _routes(api):
        ids = ("dataset_id", "job_id", "model_id", "release_id", "schedule_id", "key_id")
        url = path.format(**dict.fromkeys(ids, "nope"))
        if (method, path) in PUBLIC:
            assert api.client.request(method, url).status_code in (200, 503)
            continue
        assert api.client.request(method, url).status_code == 401, (method, path)
        for role in ROLES:
            status = api.client.request(method, url, headers=api.auth(role)).status_code
            if role in CONTRACT[(method, path)]:
                # admitted: past auth, so a bad body (422) or a missing id (404), never 401/403
                assert status not in (401, 403), (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)


@pytest.mark.parametrize("path", ["/v1/datasets/{}", "/v1/datasets/{}/budget"])
def test_other_projects_get_404_not_403(api, cps_small, path):
    ds = api.upload(cps_small)
    r = api.client.get(path.format(ds["id"]), headers=api.auth("other_owner"))
    assert r.status_code == 404 and ds["id"] in r.json()["detail"]
