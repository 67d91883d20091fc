"""The web console in a real browser (issue 23): headless Debian Chromium driven by
Playwright against `sanitas serve` that really trains, on AER CPS1988.

An owner signs in, uploads the table, declares a public domain, starts a job and watches
it finish, reads the report and approves the release; a consumer finds the release and
downloads through the builder a file with the rows asked for; an auditor filters the
audit log to the job's entries. The same run proves the role rules in the browser, the
CSRF check, and that no page loads anything from anywhere but the server. Each page is
saved as a screenshot (SANITAS_SCREENSHOTS=dir keeps them; README shows them).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api", reason="dev extra: playwright")


@pytest.fixture
def server(tmp_path, server_starter):
    yield from server_starter(tmp_path, f"sqlite:///{tmp_path / 'console.db'}")


@pytest.fixture
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian package chromium is required (make test installs it)"
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


class Visits:
    """Every request each page makes, and a screenshot of each page."""

    def __init__(self, server_url: str, shots: Path) -> None:
        self.origin = urlparse(server_url).netloc
        self.elsewhere: list[str] = []
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)

    def watch(self, context) -> None:
        def seen(request) -> None:
            url = urlparse(request.url)
            if url.scheme not in ("data", "about", "blob") and url.netloc != self.origin:
                self.elsewhere.append(request.url)

        context.on("request", seen)

    def shoot(self, page, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


def _sign_in(browser, server, visits, key: str):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    visits.watch(context)
    context.set_default_timeout(90_000)  # a loaded CI machine trains beside the browser
    page = context.new_page()
    page.goto(f"{server.url}/console")
    assert "/console/sign-in" in page.url
    page.fill("#key", key)
    _go(page, "button[type=submit]")
    return context, page


def _go(page, selector: str) -> None:
    """Click what loads a new page, and wait for it (a count or a read right after a
    bare click may see the page before, or none, on a loaded machine)."""
    with page.expect_navigation(timeout=120_000):
        page.click(selector)
    page.wait_for_load_state()


def _problem(page) -> str:
    return page.inner_text("div.problem")


def test_owner_consumer_and_auditor_in_a_real_browser(server, browser, cps, tmp_path):
    shots = Path(os.environ.get("SANITAS_SCREENSHOTS") or tmp_path / "screenshots")
    visits = Visits(server.url, shots)
    table = tmp_path / "cps1988.csv"
    cps.drop(columns=["rownames"]).sample(3_000, random_state=7).to_csv(table, index=False)

    # owner: sign in, upload, declare a public domain
    owner_context, page = _sign_in(browser, server, visits, server.keys["owner"])
    assert page.url.endswith("/console/datasets")
    page.set_input_files("#file", str(table))
    page.fill("#name", "CPS1988 <script>alert(1)</script>")
    page.fill("#epsilon_budget", "3")
    _go(page, "form[enctype] button[type=submit]")
    assert "/console/datasets/" in page.url
    dataset_id = page.url.rsplit("/", 1)[1].split("#")[0]
    assert page.inner_text("h1").startswith("CPS1988 <script>")  # shown as text, not run
    row = page.locator("tr", has=page.locator("strong", has_text="experience"))
    row.locator("summary").click()
    row.locator("input[name=bound_low]").fill("0")
    row.locator("input[name=bound_high]").fill("70")
    with page.expect_navigation(timeout=120_000):
        row.locator("button[type=submit]").click()
    row = page.locator("tr", has=page.locator("strong", has_text="experience"))
    assert "[0.0, 70.0]" in row.inner_text()
    visits.shoot(page, "owner-dataset")

    # CSRF: the same form posted without its token is refused and charges nothing
    refused = owner_context.request.post(
        f"{server.url}/console/jobs", form={"dataset_id": dataset_id, "epsilon": "1"}
    )
    assert refused.status == 403 and "CSRF" in refused.text()

    # a job the budget cannot hold is refused as the API refuses it
    page.fill("#epsilon", "5")
    _go(page, "#job-form button[type=submit]")
    assert "exceeds the remaining budget" in _problem(page)
    page.go_back()

    # start a job and watch it finish (the page polls, then reloads itself)
    page.goto(f"{server.url}/console/datasets/{dataset_id}")
    page.fill("#epsilon", "1")
    page.uncheck("input[name=audit]")
    _go(page, "#job-form button[type=submit]")
    assert "/console/jobs/" in page.url
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#job-state", timeout=10_000)
    # the page's CSP forbids eval, so wait_for_function cannot run here: the state's pill
    # carries the state as its class
    page.wait_for_selector("#job-state.succeeded, #job-state.failed", timeout=420_000)
    assert page.inner_text("#job-state") == "succeeded", page.inner_text("#progress")
    page.wait_for_selector("#gates", timeout=120_000)
    report = page.frame_locator("iframe.report")
    assert "Privacy" in report.locator("body").inner_text(timeout=120_000)
    visits.shoot(page, "owner-job")
    page.locator("iframe.report").screenshot(path=str(shots / "owner-report.png"))
    page.fill("#rel-name", "CPS1988 wages, epsilon 1")
    page.fill("#rel-description", "Synthetic CPS1988 rows for wage models.")
    _go(page, "#release-form button[type=submit]")
    assert "/console/releases/" in page.url
    release_id = page.url.rsplit("/", 1)[1]
    model_id = page.inner_text("p.muted code >> nth=1")
    page.goto(f"{server.url}/console/datasets/{dataset_id}")
    ledger = page.inner_text("#ledger")
    assert job_id in ledger and "succeeded" in ledger
    visits.shoot(page, "owner-budget")

    # consumer: the catalogue, the card, a preview, the builder and its download
    consumer_context, page = _sign_in(browser, server, visits, server.keys["consumer"])
    assert page.url.endswith("/console/releases")
    visits.shoot(page, "consumer-catalogue")
    _go(page, "text=CPS1988 wages, epsilon 1")
    assert page.locator("#preview tbody tr").count() == 5
    page.fill("#n", "250")
    page.select_option("#format", "csv")
    page.fill("#seed", "11")
    page.fill("#where", "region:south")
    _go(page, "#builder button[type=submit]")
    assert "n=250" in page.inner_text("#curl-line") and "where=region%3Asouth" in page.inner_text(
        "#curl-line"
    )
    assert "samples('" in page.inner_text("#python-line")
    visits.shoot(page, "consumer-release")
    with page.expect_download() as download:
        page.click("#download-link")
    rows = pd.read_csv(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert len(rows) == 250 and set(rows["region"]) == {"south"}
    assert set(rows.columns) == set(cps.columns) - {"rownames"}
    # the consumer reaches no dataset, job or report page, as the API says
    for path in (f"/datasets/{dataset_id}", f"/jobs/{job_id}", f"/models/{model_id}/report"):
        page.goto(f"{server.url}/console{path}")
        assert "role consumer may not do this" in _problem(page), path

    # auditor: the audit log filtered to the job
    auditor_context, page = _sign_in(browser, server, visits, server.keys["auditor"])
    page.goto(f"{server.url}/console/audit")
    page.fill("#target", job_id)
    _go(page, "#audit-filters button[type=submit]")
    page.wait_for_url(f"**target={job_id}")
    entries = page.locator("#audit-entries tbody tr")
    assert entries.count() >= 1
    assert all(job_id in entries.nth(i).inner_text() for i in range(entries.count()))
    assert "job.create" in page.inner_text("#audit-entries")
    visits.shoot(page, "auditor-audit-log")
    page.goto(f"{server.url}/console/releases/{release_id}")
    assert page.locator("#withdraw").count() == 0 and page.locator("#download-link").count() == 0

    # another project's owner sees nothing of project alpha
    beta_key = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--role", "owner",
         "--project", "beta"], env=server.env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    beta_context, page = _sign_in(browser, server, visits, beta_key)
    page.goto(f"{server.url}/console/datasets/{dataset_id}")
    assert f"no dataset '{dataset_id}'" in _problem(page)
    page.goto(f"{server.url}/console/releases")
    assert "CPS1988" not in page.inner_text("main")

    # login CSRF: a page elsewhere posting project beta's key into the consumer's browser
    # is refused, and the consumer stays who they were
    trap = consumer_context.new_page()
    form = f'<input name="key" value="{beta_key}"><button>go</button>'
    trap.set_content(f'<form method="post" action="{server.url}/console/sign-in">{form}</form>')
    with trap.expect_navigation():
        trap.click("button")
    assert "sign in from this server's own sign-in page" in _problem(trap)
    trap.goto(f"{server.url}/console/releases")
    assert "consumer · alpha" in trap.inner_text("header")

    # signed out, the cookie is dead even if replayed
    page = owner_context.new_page()
    page.goto(f"{server.url}/console/datasets")
    _go(page, "header form button[type=submit]")
    assert "/console/sign-in" in page.url
    page.goto(f"{server.url}/console/datasets/{dataset_id}")
    assert "/console/sign-in" in page.url

    assert visits.elsewhere == []
    for context in (owner_context, consumer_context, auditor_context, beta_context):
        context.close()
