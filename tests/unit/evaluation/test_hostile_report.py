"""Column names and category values are the uploader's strings: a report built from
hostile ones runs no script, fetches nothing and attaches nothing, in the HTML, in the
PDF and in a real browser (issue 19, B1)."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from html import unescape
from html.parser import HTMLParser
from typing import ClassVar

import pandas as pd
import pytest
from pypdf import PdfReader

from evaluation.evaluate import evaluate
from evaluation.report import CONTENT_SECURITY_POLICY, render_html, write_report


class _Hits(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Hits.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        return


@pytest.fixture(scope="module")
def listener():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def hostile(cps_three, listener, tmp_path_factory):
    names = {
        "wage": '<link rel="attachment" href="file:///etc/hostname">',
        "education": f'<img src="{listener}/img" onerror="document.body.dataset.pwned=1">',
        "region": "<script>document.body.dataset.pwned=1</script>",
        "ethnicity": f'<style>@import "{listener}/css";</style>',
    }
    frames = []
    for frame in cps_three:
        frame = frame.copy()
        frame["region"] = (
            frame["region"]
            .astype(str)
            .replace("south", f'<iframe src="{listener}/frame"></iframe>')
        )
        frames.append(frame.rename(columns=names))
    train, holdout, synthetic = frames
    result = evaluate(train, holdout, synthetic, privacy={"dp": True, "epsilon": 1.0})
    out = tmp_path_factory.mktemp("hostile")
    return names, write_report(result.data, out)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_hostile_names_are_text_in_the_html(hostile):
    _, paths = hostile
    html = paths["html"].read_text()
    parser = _Tags()
    parser.feed(html)
    assert not parser.tags & {"script", "link", "iframe", "object", "embed", "base"}
    assert all(url.startswith("data:image/png;base64,") for url in parser.urls), parser.urls
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert f'content="{CONTENT_SECURITY_POLICY}"' in unescape(html)


def test_the_pdf_attaches_nothing_and_prints_the_names(hostile):
    _, paths = hostile
    reader = PdfReader(paths["pdf"])
    assert reader.attachments == {}
    text = "".join(page.extract_text() for page in reader.pages)
    assert '<link rel="attachment"' in text  # shown as the text it is


def test_headless_chromium_runs_no_script_and_fetches_nothing(hostile, listener):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian package chromium is required (make test installs it)"
    _Hits.hits.clear()
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=3000", "--dump-dom", hostile[1]["html"].as_uri()],
        capture_output=True, timeout=120, text=True, check=True,
    )  # fmt: skip
    assert "<body" in done.stdout and "data-pwned" not in done.stdout
    assert _Hits.hits == []


def test_an_image_report_refuses_a_figure_that_is_not_inline(hostile):
    from evaluation.report import ReportError

    data = {"kind": "images", "figures": {"samples": "file:///etc/passwd"}, "gates": []}
    with pytest.raises(ReportError, match="inline PNG"):
        render_html(data)


def test_the_report_renders_a_dollar_sign_as_text(cps_three):
    """Matplotlib parsed "$...$" in a column name as mathtext: an odd count failed the
    report; now drawn as written."""
    train, holdout, synthetic = (f.rename(columns={"wage": "wage $ per week $x^"})
                                 for f in cps_three)  # fmt: skip
    result = evaluate(train, holdout, synthetic, privacy={"dp": True, "epsilon": 1.0})
    assert "wage $ per week $x^" in render_html(result.data)
    pd.testing.assert_index_equal(train.columns, synthetic.columns)
