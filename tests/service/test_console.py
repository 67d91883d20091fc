"""The web console over the real HTTP stack, on SQLite and PostgreSQL (issue 23): sign-in
turns a key into a session cookie the page never sees the key of; forms need the CSRF
token; the console refuses what the API refuses, with the API's words; strings from users
are escaped; nothing is sent without a session, not even a body; one-time links work once.
The browser walk is tests/service/test_console_browser.py."""

from __future__ import annotations

import html
import re

from sqlalchemy import select
from typer.testing import CliRunner

from service.cli import app as cli
from service.db import ApiKey
from service.http.auth import hash_key, revoke_key


def _sign_in(api, role: str) -> str:
    """Signs the test client in; the session's CSRF token, read off the page."""
    api.client.cookies.clear()
    r = api.client.post("/console/sign-in", data={"key": api.keys[role]}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = api.client.get(r.headers["location"])
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _problem(page) -> str:
    found = re.search(r'<div class="problem"[^>]*>(.*?)</div>', page.text, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else ""


def test_sign_in_keeps_the_key_out_of_the_page_and_ends_when_the_key_does(api):
    anonymous = api.client.get("/console/datasets", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/console/sign-in?next=/console/datasets"
    wrong = api.client.post("/console/sign-in", data={"key": "san_nope"})
    assert wrong.status_code == 401 and "unknown or revoked API key" in wrong.text
    # login CSRF: another site posting a (valid) key into a visitor's browser is refused
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        forced = api.client.post("/console/sign-in", data={"key": api.keys["other_owner"]},
                                 headers=headers, follow_redirects=False)  # fmt: skip
        assert forced.status_code == 403 and "set-cookie" not in forced.headers

    r = api.client.post("/console/sign-in", data={"key": api.keys["owner"],
                        "next": "https://evil.example/"}, follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/console"  # never a page elsewhere
    cookie = r.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/console"):
        assert attribute in cookie
    page = api.client.get("/console/datasets")
    assert page.status_code == 200 and api.keys["owner"] not in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert api.client.get("/console/static/htmx.min.js").status_code == 200

    with api.client.app.state.sessions() as s:  # revoked: the session dies with the key
        key_id = s.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(api.keys["owner"])))
        revoke_key(s, key_id)
    gone = api.client.get("/console/datasets", follow_redirects=False)
    assert gone.status_code == 303 and "/console/sign-in" in gone.headers["location"]


def test_forms_need_the_csrf_token_and_bodies_need_a_session(api, cps_small):
    csrf = _sign_in(api, "owner")
    ds = api.upload(cps_small, name="cps", budget=3)
    for token in (None, "forged"):
        body = {"dataset_id": ds["id"], "epsilon": "1", **({"csrf": token} if token else {})}
        r = api.client.post("/console/jobs", data=body)
        assert r.status_code == 403 and "CSRF token" in _problem(r)
    budget = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=api.auth("owner")).json()
    assert budget["epsilon_spent"] == 0  # nothing charged

    # the API's refusal, in its words: a typo'd number names the field
    r = api.client.post("/console/jobs", data={"csrf": csrf, "dataset_id": ds["id"],
                                               "epsilon": "one"})  # fmt: skip
    assert r.status_code == 422 and "epsilon" in _problem(r)
    # a fractional epoch count reaches the API (its 422), not cut to a whole one
    r = api.client.post("/console/jobs", data={"csrf": csrf, "dataset_id": ds["id"],
                                               "epsilon": "1", "epochs": "1.5"})  # fmt: skip
    assert r.status_code == 422 and "epochs" in _problem(r)
    job = {"csrf": csrf, "dataset_id": ds["id"]}
    r = api.client.post("/console/jobs", data={**job, "epsilon": "5"})
    assert r.status_code == 409 and "exceeds the remaining budget" in _problem(r)
    r = api.client.post("/console/jobs", data={**job, "epsilon": "1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/jobs/")

    # no session: a body is refused on its headers, before a byte of it is read
    api.client.cookies.clear()
    r = api.client.post("/console/datasets", content=b"x" * 10,
                        headers={"content-length": str(10**12)})  # fmt: skip
    assert r.status_code == 401 and "sign in" in r.json()["detail"]


def test_pages_show_users_strings_as_text_and_follow_the_api_roles(api, cps_small):
    hostile = '<img src=x onerror="alert(1)">'
    ds = api.upload(cps_small.rename(columns={"region": hostile}), name=f"cps {hostile}")
    csrf = _sign_in(api, "owner")
    page = api.client.get(f"/console/datasets/{ds['id']}")
    assert hostile not in page.text and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text
    # declaring a public domain goes through the API's schema route
    r = api.client.post(f"/console/datasets/{ds['id']}/schema", data={
        "csrf": csrf, "column": "experience", "bound_low": "0", "bound_high": "70"})  # fmt: skip
    assert r.status_code == 200 and "[0.0, 70.0]" in r.text
    r = api.client.post(f"/console/datasets/{ds['id']}/schema", data={
        "csrf": csrf, "column": "age", "bound_low": "0", "bound_high": "70"})  # fmt: skip
    assert r.status_code == 422 and "'age' is not in the schema" in _problem(r)
    # a new version through the API's versions route: the columns must match
    renamed = cps_small.rename(columns={"region": hostile})
    v2 = {"file": ("v2.csv", renamed.head(2500).to_csv(index=False))}
    r = api.client.post(f"/console/datasets/{ds['id']}/versions", data={"csrf": csrf}, files=v2)
    assert r.status_code == 200 and "version 2" in r.text and "2,500 rows" in r.text
    r = api.client.post(f"/console/datasets/{ds['id']}/versions", data={"csrf": csrf},
                        files={"file": ("v3.csv", cps_small.to_csv(index=False))})  # fmt: skip
    assert r.status_code == 422 and "missing" in _problem(r)

    _sign_in(api, "consumer")
    for path in (f"/console/datasets/{ds['id']}", "/console/jobs", "/console/audit"):
        r = api.client.get(path)
        assert r.status_code == 403 and "role consumer may not do this" in _problem(r), path
    assert api.client.get("/console/releases").status_code == 200

    _sign_in(api, "other_owner")  # project beta: the same 404 as a dataset that is not there
    r = api.client.get(f"/console/datasets/{ds['id']}")
    assert r.status_code == 404 and f"no dataset '{ds['id']}'" in _problem(r)

    _sign_in(api, "auditor")
    r = api.client.get("/console/audit", params={"action": "dataset.upload"})
    assert r.status_code == 200 and r.text.count("<td>dataset.upload</td>") == 1
    r = api.client.get("/console/audit/export", params={"format": "jsonl"})
    assert r.status_code == 200 and r.text.count('"action": "dataset.upload"') == 1


def test_a_one_time_link_signs_in_once(api):
    env = {"SANITAS_DATA_DIR": str(api.data_dir),
           "SANITAS_DATABASE_URL": str(api.client.app.state.settings.database_url)}  # fmt: skip
    done = CliRunner().invoke(cli, ["console", "link", api.keys["auditor"], "--url", "http://x"],
                              env=env)  # fmt: skip
    assert done.exit_code == 0, done.output
    link = re.search(r"http://x(/console/sign-in/\S+)", done.output).group(1)
    first = api.client.get(link)
    assert first.status_code == 200 and 'http-equiv="refresh"' in first.text
    assert "samesite=strict" in first.headers["set-cookie"].lower()
    assert api.client.get("/console/audit").status_code == 200  # signed in as the auditor
    api.client.cookies.clear()
    again = api.client.get(link)
    assert again.status_code == 401 and "unknown, used or expired" in again.text
    refused = CliRunner().invoke(cli, ["console", "link", "nokey"], env=env)
    assert refused.exit_code == 2


def test_every_console_page_and_form_needs_a_session(api):
    """A walk of the app's console routes: without a session a page sends the browser
    to sign in and a form is refused before its body is read; only the sign-in pages and
    the static files are open."""
    from service.console import PAGES

    open_paths = {"/console/sign-in", "/console/sign-in/{link}"}
    walked = 0
    for route in (r for module in PAGES for r in module.router.routes):
        if route.path in open_paths:
            continue
        url = re.sub(r"\{[^}]+\}", "nope", route.path)
        for method in route.methods or ():
            if method == "HEAD":
                continue
            r = api.client.request(method, url, follow_redirects=False)
            if method == "GET":
                assert r.status_code == 303 and "/console/sign-in" in r.headers["location"], url
            else:
                assert r.status_code == 401, (method, url, r.status_code)
            walked += 1
    assert walked >= 20
