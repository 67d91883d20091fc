"""Images end to end through the API: upload real digits, train image-ar under DP, read
its report, release it, download images of one class as NPZ and PNGs in a ZIP."""

import io
import zipfile

import numpy as np
import pytest

from tests.service.conftest import make_api
from tests.service.conftest import wait_for_job as _wait

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded(tmp_path):
    """The embedded default (SQLite, local files, in-process worker)."""
    yield from make_api(tmp_path, f"sqlite:///{tmp_path / 'sanitas.db'}", worker_threads=1)


def test_image_ar_trains_reports_releases_and_serves_one_class(embedded, digits):
    api, owner, consumer = embedded, embedded.auth("owner"), embedded.auth("consumer")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=digits.images[..., 0], labels=digits.labels)
    ds = api.client.post(
        "/v1/datasets", files={"file": ("digits.npz", buffer.getvalue())},
        data={"name": "digits", "epsilon_budget": "10"}, headers=owner,
    ).json()  # fmt: skip
    job = api.client.post(
        "/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 10, "epochs": 3}, headers=owner
    ).json()
    assert job["spec"]["generator"] == "image-ar"
    job = _wait(api, job["id"])
    assert job["state"] == "succeeded", job["error"]
    model = api.client.get(f"/v1/models/{job['model_id']}", headers=owner).json()
    assert model["privacy"]["dp"] and 0 < model["privacy"]["epsilon"] <= 10
    assert {g["name"] for g in model["gates"]} >= {"exact_copies", "dcr_share"}
    html = api.client.get(f"/v1/models/{model['id']}/report?format=html", headers=owner)
    assert html.status_code == 200 and b"Privacy and quality report: images" in html.content
    assert b"data:image/png;base64" in html.content and b"TSTR" in html.content
    pdf = api.client.get(f"/v1/models/{model['id']}/report?format=pdf", headers=owner)
    assert pdf.content.startswith(b"%PDF")

    body = {"model_id": model["id"]}
    if not model["passed"]:
        body["override_reason"] = "three epochs for speed; this test checks the image path"
    release = api.client.post("/v1/releases", json=body, headers=owner).json()
    card = api.client.get(f"/v1/releases/{release['id']}", headers=consumer).json()
    assert card["kind"] == "images" and card["image_shape"] == [8, 8, 1] and "3" in card["classes"]

    url = f"/v1/releases/{release['id']}/samples"
    npz = api.client.get(url, params={"n": 40, "format": "npz", "label": "3", "seed": 1},
                         headers=consumer)  # fmt: skip
    assert npz.status_code == 200, npz.text
    arrays = np.load(io.BytesIO(npz.content), allow_pickle=False)
    assert arrays["images"].shape == (40, 8, 8, 1) and arrays["images"].dtype == np.uint8
    assert {str(arrays["classes"][i]) for i in arrays["labels"]} == {"3"}
    png_zip = api.client.get(url, params={"n": 25, "format": "zip"}, headers=consumer)
    with zipfile.ZipFile(io.BytesIO(png_zip.content)) as archive:
        names = archive.namelist()
    assert len(names) == 25 and all(n.endswith(".png") for n in names)
    for params, needle in (
        ({"n": 5, "format": "csv"}, "npz or zip"),
        ({"n": 5, "format": "npz", "label": "eleven"}, "'eleven'"),
        ({"n": 5, "format": "npz", "where": "x:1"}, "label="),
    ):
        bad = api.client.get(url, params=params, headers=consumer)
        assert bad.status_code == 422 and needle in bad.json()["detail"], bad.json()
    budget = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=owner).json()
    assert budget["epsilon_spent"] == 10


def test_image_gan_job_is_audited_released_and_serves_one_class(embedded, digits):
    """The DP image GAN through the API: asked for by name, audited through its samples,
    its release streams images of the asked class."""
    api, owner, consumer = embedded, embedded.auth("owner"), embedded.auth("consumer")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=digits.images[..., 0], labels=digits.labels)
    ds = api.client.post(
        "/v1/datasets", files={"file": ("digits.npz", buffer.getvalue())},
        data={"name": "digits", "epsilon_budget": "5"}, headers=owner,
    ).json()  # fmt: skip
    job = api.client.post(
        "/v1/jobs",
        json={"dataset_id": ds["id"], "generator": "image-gan", "epsilon": 5, "epochs": 3,
              "audit": True},
        headers=owner,
    ).json()  # fmt: skip
    job = _wait(api, job["id"])
    assert job["state"] == "succeeded", job["error"]
    model = api.client.get(f"/v1/models/{job['model_id']}", headers=owner).json()
    assert model["generator"] == "image-gan" and 0 < model["privacy"]["epsilon"] <= 5
    assert "privacy_audit" in {g["name"] for g in model["gates"]}
    release = api.client.post(
        "/v1/releases",
        json={"model_id": model["id"], "override_reason": "three epochs: plumbing check only"},
        headers=owner,
    ).json()
    npz = api.client.get(
        f"/v1/releases/{release['id']}/samples", params={"n": 30, "format": "npz", "label": "5"},
        headers=consumer,
    )  # fmt: skip
    assert npz.status_code == 200, npz.text
    arrays = np.load(io.BytesIO(npz.content), allow_pickle=False)
    assert arrays["images"].shape == (30, 8, 8, 1)
    assert {str(arrays["classes"][i]) for i in arrays["labels"]} == {"5"}
