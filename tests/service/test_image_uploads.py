"""Image uploads on real images (scikit-learn's 1,797 handwritten 8x8 digits).

Good uploads round-trip exactly through encryption; bad ones (zip bombs, entries that
leave the archive, PNGs with lying headers, mixed sizes, wrong arrays) get a problem
JSON naming the problem and leave nothing in storage or the database.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from service.db import Dataset
from service.storage.encrypted import decrypt_to


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    images = np.round(data.images * 255 / 16).astype(np.uint8)  # 0..16 -> 0..255
    return images, data.target.astype(np.int64)


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries:
            archive.writestr(name, payload)
    return buffer.getvalue()


def _digit_pngs(images: np.ndarray, labels: np.ndarray) -> list[tuple[str, bytes]]:
    return [
        (f"{y}/{i:04d}.png", _png(x)) for i, (x, y) in enumerate(zip(images, labels, strict=True))
    ]


def _post(api, filename: str, payload: bytes):
    return api.client.post(
        "/v1/datasets",
        files={"file": (filename, payload)},
        data={"name": "digits", "epsilon_budget": "4"},
        headers=api.auth("owner"),
    )


def _stored(api, dataset_id: str, tmp_path) -> np.lib.npyio.NpzFile:
    from service.db import Dataset, DatasetVersion
    from service.storage.data_keys import unwrap

    with api.client.app.state.sessions() as s:
        version = s.query(DatasetVersion).filter_by(dataset_id=dataset_id).one()
        encrypted = api.data_dir / version.path
        wrapped = s.get(Dataset, dataset_id).data_key
    assert b"\x93NUMPY" not in encrypted.read_bytes()  # encrypted at rest
    plain = tmp_path / "plain.npz"
    decrypt_to(unwrap([api.client.app.state.key], wrapped, dataset_id), encrypted, plain)
    return np.load(plain, allow_pickle=False)


def _nothing_left(api) -> None:
    leftovers = sorted(p.name for p in api.data_dir.iterdir() if p.is_dir() and p.name != "reports")
    assert leftovers in ([], ["datasets"]), leftovers
    datasets = api.data_dir / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []
    with api.client.app.state.sessions() as s:
        assert s.query(Dataset).count() == 0


def test_npz_upload_round_trips_and_names_its_shape(api, digits, tmp_path):
    images, labels = digits
    r = _post(api, "digits.npz", _npz(images=images, labels=labels))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "images" and body["version"]["rows"] == 1797
    assert body["schema"] | {"classes": None} == {
        "kind": "images", "height": 8, "width": 8, "channels": 1, "classes": None, "columns": [],
    }  # fmt: skip
    assert body["schema"]["classes"] == [str(d) for d in range(10)]
    stored = _stored(api, body["id"], tmp_path)
    assert np.array_equal(stored["images"][..., 0], images)
    assert np.array_equal(stored["labels"], labels)


def test_zip_of_png_class_folders_round_trips(api, digits, tmp_path):
    images, labels = digits
    r = _post(api, "digits.zip", _zip(_digit_pngs(images[:600], labels[:600])))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["version"]["rows"] == 600 and body["schema"]["channels"] == 1
    stored = _stored(api, body["id"], tmp_path)
    names = [str(c) for c in stored["classes"]]
    assert names == sorted(str(d) for d in set(labels[:600]))
    restored = np.array([int(names[k]) for k in stored["labels"]])
    assert np.array_equal(restored, labels[:600])
    assert np.array_equal(stored["images"][..., 0], images[:600])


def test_rgb_pngs_keep_three_channels(api, digits, tmp_path):
    images, labels = digits
    rgb = np.stack([images, 255 - images, images // 2], axis=-1)[:150]
    r = _post(api, "rgb.zip", _zip(_digit_pngs(rgb, labels[:150])))
    assert r.status_code == 201, r.text
    assert r.json()["schema"]["channels"] == 3
    assert np.array_equal(_stored(api, r.json()["id"], tmp_path)["images"], rgb)


def _bomb() -> bytes:
    """One PNG-named entry that inflates 300 MB of zeros from about 300 kB."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("0/bomb.png", "w", force_zip64=True) as entry,
    ):
        for _ in range(300):
            entry.write(bytes(1 << 20))
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height and holds no pixel data: what a
    decompression bomb looks like to a decoder before it inflates anything."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _bad_cases(images: np.ndarray, labels: np.ndarray) -> list[tuple[str, bytes, int, str]]:
    pngs = _digit_pngs(images[:120], labels[:120])
    lying = pngs[0][1][:33] + b"\x00garbage where the image data should be" * 4
    return [
        ("bomb.zip", _bomb(), 413, "Zip Bomb"),
        ("traversal.zip", _zip([*pngs, ("../../etc/evil.png", pngs[0][1])]), 422, "leaves"),
        ("absolute.zip", _zip([*pngs, ("/tmp/evil.png", pngs[0][1])]), 422, "leaves"),
        ("lying.zip", _zip([*pngs, ("3/lying.png", lying)]), 422, "not a valid PNG"),
        ("renamed.zip", _zip([*pngs, ("3/notes.png", b"just text, no image")]), 422, "PNG"),
        (
            "mixed.zip",
            _zip([*pngs, ("3/big.png", _png(np.zeros((9, 9), np.uint8)))]),
            422,
            "9x9",
        ),
        ("flat.zip", _zip([(f"x{i}.png", p) for i, (_, p) in enumerate(pngs)]), 422, "folder"),
        ("few.zip", _zip(pngs[:20]), 422, "100"),
        (
            "huge.npz",
            _npz(images=np.zeros((100, 65, 65), np.uint8), labels=labels[:100]),
            422,
            "64x64",
        ),
        ("float.npz", _npz(images=images.astype(np.float32), labels=labels), 422, "uint8"),
        ("nolabels.npz", _npz(images=images), 422, "labels"),
        ("short.npz", _npz(images=images, labels=labels[:10]), 422, "labels"),
        ("notzip.npz", b"images and labels, honestly", 422, "archive"),
        ("declared-huge.zip", _zip([*pngs, ("3/huge.png", _png_declaring(100_000, 100_000))]),
         413, "more pixels"),
        ("label-20M.npz", _npz(images=images[:200], labels=np.r_[labels[:199], 20_000_000]),
         422, "Too Many Classes"),
    ]  # fmt: skip


def test_bad_image_uploads_are_named_and_leave_nothing(api, digits):
    for filename, payload, status, needle in _bad_cases(*digits):
        r = _post(api, filename, payload)
        assert r.status_code == status, (filename, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert needle in r.json()["detail"] or needle in r.json()["title"], (filename, r.json())
        _nothing_left(api)


def test_image_dataset_is_not_trained_by_a_table_generator(api, digits):
    images, labels = digits
    ds = _post(api, "digits.npz", _npz(images=images, labels=labels)).json()
    owner = api.auth("owner")
    job = api.client.post(
        "/v1/jobs",
        json={"dataset_id": ds["id"], "epsilon": 1, "generator": "tabular-ar"},
        headers=owner,
    )
    assert job.status_code == 422 and "holds images" in job.json()["detail"]
    budget = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=owner).json()
    assert budget["epsilon_spent"] == 0  # refused before any charge
    patch = api.client.patch(f"/v1/datasets/{ds['id']}/schema", json={"drop": ["x"]}, headers=owner)
    assert patch.status_code == 422
    rgb = np.repeat(images[..., None], 3, axis=-1)
    version = api.client.post(
        f"/v1/datasets/{ds['id']}/versions",
        files={"file": ("rgb.npz", _npz(images=rgb, labels=labels))},
        headers=owner,
    )
    assert version.status_code == 422 and "match" in version.json()["detail"]
    same = api.client.post(
        f"/v1/datasets/{ds['id']}/versions",
        files={"file": ("more.npz", _npz(images=images[:500], labels=labels[:500]))},
        headers=owner,
    )
    assert same.status_code == 201 and same.json()["number"] == 2
