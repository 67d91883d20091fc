"""Over real HTTP against `sanitas serve`, on SQLite and PostgreSQL, while a model trains.

The owner uploads, trains and approves; the consumer downloads synthetic rows and is
refused the dataset, the model and the report. Around that path, transfers race:
20 uploads are each stored intact (the SHA-256 of what was sent, what the server
reports and what decrypts from its storage agree) and 20 downloads against 3 sampler
slots all complete, the same seed giving the bytes of a download made alone. The warm
sampler pool comes back after a kill -9, and an abandoned download leaves no sampler
behind. Marker strings planted in the training table never reach a consumer.
"""

import hashlib
import io
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from service.settings import Settings
from service.storage.encrypted import iter_decrypted, load_key

pytestmark = pytest.mark.slow
MARKER = "zqmarker"
RACERS = 20
ROWS = 5_000
# Fair (1978) codebook: the respondent's occupation
OCCUPATIONS = {1: "student", 2: "farming or semi-skilled", 3: "white-collar",
               4: "teacher or technician", 5: "managerial", 6: "professional"}  # fmt: skip


@pytest.fixture
def serving(tmp_path, database_url, request):
    start_server = request.getfixturevalue("server_starter")
    yield from start_server(
        tmp_path,
        database_url,
        SANITAS_WORKER_THREADS="1",
        SANITAS_HEARTBEAT_SECONDS="0.5",
        SANITAS_MAX_CONCURRENT_SAMPLERS="3",
        SANITAS_SAMPLER_WAIT_SECONDS="300",
        SANITAS_SAMPLERS_PER_KEY="3",  # the race below is one key against 3 slots
        SANITAS_SAMPLERS_PER_PROJECT="3",
    )


def _planted(fair: pd.DataFrame) -> pd.DataFrame:
    """Occupations by name, one of them a one-off marker; an ID column of markers."""
    frame = fair.copy()
    frame["occupation"] = frame["occupation"].round().astype(int).map(OCCUPATIONS)
    frame.loc[frame.index[0], "occupation"] = f"{MARKER}-occupation"
    frame.insert(0, "record", [f"{MARKER}-{i:05d}" for i in range(len(frame))])
    return frame


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_owner_trains_and_releases_consumer_downloads(serving, fair, cps):
    url, owner, consumer = serving.url, serving.auth("owner"), serving.auth("consumer")
    planted = _planted(fair)
    with httpx.Client(base_url=url, timeout=300) as http:
        ds = http.post(
            "/v1/datasets",
            headers=owner,
            data={"name": "fair", "epsilon_budget": "2"},
            files={"file": ("fair.csv", planted.to_csv(index=False))},
        ).json()
        job = http.post(
            "/v1/jobs",
            headers=owner,
            json={
                "dataset_id": ds["id"],
                "epsilon": 1.0,
                "epochs": 3,
                "target_column": "rate_marriage",
            },
        ).json()
        assert job["state"] == "queued"
        _race_uploads(serving, cps.drop(columns=["rownames"]))
        deadline = time.monotonic() + 300
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            job = http.get(f"/v1/jobs/{job['id']}", headers=owner).json()
        assert job["state"] == "succeeded", job["error"]
        model = http.get(f"/v1/models/{job['model_id']}", headers=owner).json()
        body = {"model_id": model["id"]}
        if not model["passed"]:
            body["override_reason"] = "three epochs for speed; this test checks the plumbing"
        release = http.post("/v1/releases", headers=owner, json=body)
        assert release.status_code == 201, release.text
        release_id = release.json()["id"]

        with http.stream(
            "GET", f"/v1/releases/{release_id}/samples", params={"n": ROWS, "seed": 1},
            headers=consumer,
        ) as stream:  # fmt: skip
            assert stream.status_code == 200
            alone = b"".join(stream.iter_bytes())
        rows = pd.read_csv(io.StringIO(alone.decode()))
        assert len(rows) == ROWS and set(rows.columns) == set(fair.columns)
        # rare occupations DP partition selection dropped come back as "(other)"
        assert set(rows["occupation"]) - {"(other)"} <= set(OCCUPATIONS.values())

        seen = [alone, *_race_downloads(serving, release_id, alone)]
        _sampler_survives(serving, release_id, alone)
        seen.append(http.get(f"/v1/releases/{release_id}", headers=consumer).content)
        seen.append(http.get("/v1/releases", headers=consumer).content)
        assert not [b for b in seen if MARKER.encode() in b]
        for path in (
            f"/v1/datasets/{ds['id']}",
            f"/v1/models/{model['id']}",
            f"/v1/models/{model['id']}/report",
        ):
            assert http.get(path, headers=consumer).status_code == 403, path


def _data_keys(database_url: str, server_key: bytes) -> dict[str, bytes]:
    """Each stored file's name and the data key of its dataset."""
    from sqlalchemy import create_engine, text

    from service.storage.data_keys import unwrap

    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT v.path, d.id, d.data_key FROM dataset_versions v "
            "JOIN datasets d ON d.id = v.dataset_id"
        )).all()  # fmt: skip
    engine.dispose()
    return {Path(path).name: unwrap([server_key], wrapped, ident) for path, ident, wrapped in rows}


def _race_uploads(server, cps: pd.DataFrame) -> None:
    """Distinct real slices of CPS1988, sent together while the model trains."""
    bodies = [cps.sample(1_000, random_state=i).to_csv(index=False).encode() for i in range(20)]

    def send(i: int) -> dict:
        r = httpx.post(
            f"{server.url}/v1/datasets",
            headers=server.auth("owner"),
            timeout=300,
            files={"file": (f"slice{i}.csv", bodies[i])},
            data={"name": f"slice{i}", "epsilon_budget": "1"},
        )
        assert r.status_code == 201, r.text
        return r.json()

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        made = list(pool.map(send, range(RACERS)))
    sent = sorted(_sha(b) for b in bodies)
    assert sorted(d["version"]["sha256"] for d in made) == sent
    assert all(d["version"]["rows"] == 1_000 for d in made)
    data_dir = Path(server.env["SANITAS_DATA_DIR"])
    keys = _data_keys(
        server.env["SANITAS_DATABASE_URL"], load_key(None, Settings(data_dir=data_dir).key_path)
    )
    stored = [
        _sha(b"".join(iter_decrypted(keys[path.name], path)))
        for path in (data_dir / "datasets").glob("*.enc")
    ]
    assert sorted(set(stored) & set(sent)) == sent  # every upload decrypts to what was sent
    assert len(stored) == RACERS + 1  # and nothing else is there: no partial, no duplicate


def _race_downloads(server, release_id: str, alone: bytes) -> list[bytes]:
    """Seeds 1 and 2 alternate; 20 downloads against 3 sampler slots all complete."""

    def fetch(seed: int) -> bytes:
        r = httpx.get(
            f"{server.url}/v1/releases/{release_id}/samples",
            params={"n": ROWS, "seed": seed},
            headers=server.auth("consumer"),
            timeout=300,
        )
        assert r.status_code == 200, r.text
        return r.content

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        raced = list(pool.map(fetch, [1, 2] * (RACERS // 2)))
    assert {_sha(b) for b in raced[0::2]} == {_sha(alone)}
    assert len({_sha(b) for b in raced[1::2]}) == 1 and raced[1] != alone
    assert all(b.count(b"\n") == ROWS + 1 for b in raced)
    return raced


def _children(pid: int) -> dict[int, bytes]:
    """Child processes of ``pid`` and their command lines, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found[int(stat.parent.name)] = command
    return found


def _sampler_pools(server) -> dict[int, dict[int, bytes]]:
    """Each sampler pool the server runs now, and the samplers each has forked."""
    return {
        p: _children(p)
        for p, cmd in _children(server.pid).items()
        if b"service.sampling.sampler_pool" in cmd
    }


def _sampler_survives(server, release_id: str, alone: bytes) -> None:
    """Kill -9 the pool: the next download starts another and gives the same bytes.
    Walk away from a long download: its forked sampler exits within seconds."""
    pools = [
        p for p, cmd in _children(server.pid).items() if b"service.sampling.sampler_pool" in cmd
    ]
    assert len(pools) == 1  # one warm pool served all 21 downloads
    os.kill(pools[0], signal.SIGKILL)
    again = httpx.get(
        f"{server.url}/v1/releases/{release_id}/samples",
        params={"n": ROWS, "seed": 1},
        headers=server.auth("consumer"),
        timeout=300,
    )
    assert again.status_code == 200 and again.content == alone
    (pool,) = [
        p for p, cmd in _children(server.pid).items() if b"service.sampling.sampler_pool" in cmd
    ]
    assert pool != pools[0]

    with httpx.stream(
        "GET", f"{server.url}/v1/releases/{release_id}/samples", params={"n": 1_000_000},
        headers=server.auth("consumer"), timeout=300,
    ) as stream:  # fmt: skip
        assert stream.status_code == 200
        next(stream.iter_bytes())
        # the forked sampler is at work (once in CI, 2026-12-07, none was found here:
        # the message says which pools and samplers the server had then)
        assert _children(pool), f"pool {pool} forked none: {_sampler_pools(server)}"
    deadline = time.monotonic() + 30
    while _children(pool) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _children(pool)
    _sampler_dies_mid_stream(server, release_id, pool)


def _sampler_dies_mid_stream(server, release_id: str, pool: int) -> None:
    """A forked sampler killed mid-download: the client's body ends without its closing
    chunk (a truncated transfer, never a short file that looks whole), and the auditor
    sees the download logged incomplete, not as the rows asked."""
    with httpx.stream(
        "GET", f"{server.url}/v1/releases/{release_id}/samples", params={"n": 900_000},
        headers=server.auth("consumer"), timeout=300,
    ) as stream:  # fmt: skip
        assert stream.status_code == 200
        body = stream.iter_bytes()
        received = len(next(body))
        (sampler,) = _children(pool)
        os.kill(sampler, signal.SIGKILL)
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in body:
                received += len(chunk)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logged = [
            e["detail"]
            for e in httpx.get(
                f"{server.url}/v1/audit-log", params={"action": "release.download"},
                headers=server.auth("auditor"), timeout=30,
            ).json()["items"]
            if e["detail"]["rows_asked"] == 900_000
        ]  # fmt: skip
        if logged:
            break
        time.sleep(0.5)
    assert [(d["complete"], d["rows"]) for d in logged] == [(False, None)]
    assert 0 < logged[0]["bytes"] <= received
