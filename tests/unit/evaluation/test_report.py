"""The report: HTML with every section, a PDF with the summary, JSON that validates, and
a page that a real browser draws."""

import copy
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from evaluation.evaluate import evaluate
from evaluation.report import ReportError, load_report, validate_report, write_report
from evaluation.spec import EvalSpec

SECTIONS = {"summary", "privacy", "fidelity", "utility", "memorization", "risks", "audit",
            "training", "gates"}  # fmt: skip


class _Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images = set(), 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.ids.add(attrs.get("id"))
        if tag == "img" and attrs.get("src", "").startswith("data:image/png;base64,"):
            self.images += 1


@pytest.fixture(scope="module")
def written(cps_three, tmp_path_factory):
    train, holdout, independent = cps_three
    privacy = {"dp": True, "epsilon": 1.0, "delta": 1e-5, "epsilon_preprocessing": 0.1,
               "epsilon_training": 0.99, "noise_multiplier": 4.5}  # fmt: skip
    result = evaluate(train, holdout, independent, spec=EvalSpec(targets=["parttime"]),
                      privacy=privacy, training={"epoch_losses": [3.0, 2.5, 2.2]})  # fmt: skip
    out = tmp_path_factory.mktemp("report")
    return result, write_report(result.data, out)


def test_html_is_self_contained_and_holds_every_section(written):
    _, paths = written
    html = paths["html"].read_text()
    parser = _Sections()
    parser.feed(html)
    assert parser.ids == SECTIONS
    assert parser.images == 5  # distributions, associations, DCR, ROC, loss curve
    assert "http://" not in html and "https://" not in html  # nothing fetched
    assert "What epsilon means here" in html


def test_html_holds_no_training_row(written, cps_three):
    train, _, _ = cps_three
    html = written[1]["html"].read_text()
    # a wage with cents is a row-level value; none may be printed
    wages = {f"{w:.2f}" for w in train["wage"].head(200)}
    assert not [w for w in wages if f">{w}<" in html]


def test_pdf_has_pages_and_the_summary(written):
    reader = PdfReader(written[1]["pdf"])
    assert len(reader.pages) >= 3
    first = reader.pages[0].extract_text()
    assert "Privacy and quality report" in first and "What epsilon means here" in first


def test_json_validates_and_rerenders(written, tmp_path):
    result, paths = written
    data = load_report(paths["json"])
    assert data["gates"] == result.gates
    again = write_report(data, tmp_path, pdf=False)
    assert "Membership inference" in again["html"].read_text()


def test_schema_rejects_a_bad_gate_status(written):
    bad = copy.deepcopy(written[0].data)
    bad["gates"][0]["status"] = "maybe"
    with pytest.raises(ReportError, match="maybe"):
        validate_report(bad)


def test_headless_chromium_draws_the_page(written, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian package chromium is required (.ci/run installs it)"
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={shot}", "--window-size=1200,1600", written[1]["html"].as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # text, tables and plots, not a blank page
    assert (pixels < 100).mean() > 0.005  # dark ink somewhere


def test_metrics_that_could_not_be_computed_render_as_n_a(written):
    """A collapsed synthetic column makes some metrics NaN, stored as null: the report
    says n/a instead of failing the job (a 3-epoch tabular-gan job failed so in CI)."""
    import copy

    from evaluation.report import render_html

    result, _ = written
    data = copy.deepcopy(result.data)
    data["fidelity"]["columns"][0]["score"] = None
    data["fidelity"]["column_pair_trends"] = None
    html = render_html(data)
    assert "n/a" in html and "column pair trends n/a" in html
