"""The Python client against a real `sanitas serve` over HTTP (issue 22): every role's
calls on real CPS1988 rows, problems as typed exceptions, downloads into pandas that
notice a stream cut short."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from service.client import (
    BudgetExceeded,
    Client,
    Forbidden,
    Gone,
    InvalidRequest,
    NotFound,
    TruncatedDownload,
    Unauthorized,
)

pytestmark = pytest.mark.slow
REGIONS = ["midwest", "northeast", "south", "west"]


@pytest.fixture
def training_server(tmp_path, database_url, server_starter):
    """`sanitas serve` with its in-process worker: jobs really train."""
    yield from server_starter(tmp_path, database_url, SANITAS_WORKER_THREADS="1",
                              SANITAS_DOWNLOAD_STALL_SECONDS="5")  # fmt: skip


def _clients(server):
    return {role: Client(server.url, server.keys[role]) for role in server.keys}


def test_each_role_through_the_client(training_server, cps_small):
    c = _clients(training_server)
    owner, consumer, auditor = c["owner"], c["consumer"], c["auditor"]
    ds = owner.upload(cps_small, name="cps", epsilon_budget=2.0)
    assert ds.version is not None and ds.version.rows == len(cps_small)
    owner.declare_schema(ds.id, categories={"region": REGIONS})
    job = owner.wait(owner.train(ds.id, epsilon=1.0, epochs=1).id, timeout=600)
    assert job.state == "succeeded", job.error
    assert [m.id for m in owner.models(dataset_id=ds.id)] == [job.model_id]
    assert job.model_id is not None
    card = owner.release(job.model_id, override_reason="client test: one epoch only")
    assert [r.id for r in consumer.releases()] == [card.id]

    frame = consumer.samples(card.id, 3_000, seed=5, where={"region": "south"})
    assert len(frame) == 3_000 and set(frame.columns) == set(cps_small.columns) - {"rownames"}
    assert (frame["region"] == "south").all()
    assert consumer.samples(card.id, 3_000, seed=5, where={"region": "south"}).equals(frame)

    with pytest.raises(InvalidRequest, match="salary"):
        consumer.samples(card.id, 10, where={"salary": 1})
    with pytest.raises(Forbidden):
        consumer.dataset(ds.id)
    with pytest.raises(NotFound):
        owner.dataset("no-such-dataset")
    with pytest.raises(BudgetExceeded) as exceeded:
        owner.train(ds.id, epsilon=1.5)
    assert exceeded.value.fields["epsilon_remaining"] == pytest.approx(1.0)
    with pytest.raises(Unauthorized):
        Client(training_server.url, "san_not-a-key").dataset(ds.id)
    with _check_truncation(consumer, training_server, card.id):
        owner.withdraw(card.id, "withdrawn by the client test")
        with pytest.raises(Gone) as gone:
            consumer.samples(card.id, 10)
        assert gone.value.fields["reason"] == "withdrawn by the client test"
        # each download is logged when it ends, with what went out (issue 22's auditor);
        # the cut one ends when the server sees the client gone (at the latest after its
        # stall), while the proxy still holds the server's side open
        deadline = time.monotonic() + 60
        while True:
            downloads = sorted(
                ((e.detail["rows_asked"], e.detail["complete"], e.detail["rows"])
                 for e in auditor.audit_events(action="release.download")),
                key=str,
            )  # fmt: skip
            if len(downloads) == 3 or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert downloads == sorted(
        [(CUT_ROWS, False, None), (3_000, True, 3_000), (3_000, True, 3_000)], key=str
    )


def test_schedules_through_the_client_and_the_cli(live_server, cps_small):
    owner = Client(live_server.url, live_server.keys["owner"])
    ds = owner.upload(cps_small, name="cps", epsilon_budget=1.0)
    nightly = owner.create_schedule(ds.id, "@daily", epsilon=0.5)
    assert nightly.cron == "0 0 * * *" and nightly.next_run_at is not None
    assert owner.pause(nightly.id).state == "paused"
    assert owner.resume(nightly.id).next_run_at is not None
    with pytest.raises(BudgetExceeded):
        owner.create_schedule(ds.id, "@weekly", epsilon=2.0)
    assert owner.delete_schedule(nightly.id).state == "deleted"
    assert list(owner.schedules()) == []
    # the same through `sanitas schedules`, against the same server
    env = {**live_server.env, "SANITAS_URL": live_server.url,
           "SANITAS_API_KEY": live_server.keys["owner"]}  # fmt: skip
    made = _cli(env, "create", ds.id, "0 3 * * 1", "--epsilon", "0.25")
    assert made["cron"] == "0 3 * * 1" and made["job"] == {"epsilon": 0.25}
    assert _cli(env, "pause", made["id"])["state"] == "paused"
    assert _cli(env, "update", made["id"], "--epsilon", "0.4")["job"]["epsilon"] == 0.4
    assert _cli(env, "resume", made["id"])["state"] == "active"
    assert _cli(env, "list")["id"] == made["id"]
    refused = _cli(env, "create", ds.id, "@daily", "--epsilon", "5", check=False)
    assert refused.returncode == 2 and "Budget Exceeded" in refused.stderr
    assert _cli(env, "delete", made["id"])["state"] == "deleted"


def _cli(env, *args, check=True):
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "service.cli", "schedules", *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    if not check:
        return done
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# the cut download: far more than the socket buffers between the server and the proxy
# hold. 20,000 rows could fit in them whole, and the server, having handed every byte
# on, logged a complete download (once in CI; with the proxy holding its side open, on
# every run here)
CUT_ROWS = 500_000
# how long the proxy keeps its side open after the cut: past the server's stall timeout
# (5 s in the test server) plus the time the sampler takes to fill the buffers. At 10 s a
# fresh-clone CI run on a loaded machine (33 min for the suite, about twice the usual)
# logged the cut download complete (2026-12-07), presumably because the proxy closed
# before the stall fired; why the stream then reached the sampler's end instead of
# being cancelled as a client gone is not established. (One way it could: until the
# sampler framed its file, a sampler that died mid-stream ended it as if whole, and was
# logged complete; test_http_end_to_end now kills one.) The test lets go of the hold once
# the download is logged, so the live server's shutdown does not wait it out
CUT_HOLD_SECONDS = 30.0


@contextlib.contextmanager
def _check_truncation(consumer, server, release_id):
    """Through a proxy that cuts the response after 4 KiB, the download raises; the
    proxy holds the server's side until the block ends."""
    port = server.url.rsplit(":", 1)[1]
    with _CuttingProxy(int(port), cut_after=4096) as proxy:
        cut = Client(f"http://127.0.0.1:{proxy.port}", server.keys["consumer"], retries=0)
        with pytest.raises(TruncatedDownload):
            cut.samples(release_id, CUT_ROWS, seed=1)
        yield


class _CuttingProxy:
    """Relays one connection at a time to the server, closing it once ``cut_after``
    bytes of the answer have passed: a dropped connection mid-download.

    The server's side stays open for ``hold`` seconds after the cut, read no more, with a
    small receive window: the server cannot send past the buffers (CUT_ROWS is larger)
    and stops at its stall timeout, as for a client that went away without a word,
    instead of racing the close."""

    def __init__(self, target: int, cut_after: int, hold: float = CUT_HOLD_SECONDS) -> None:
        self.target, self.cut_after, self.hold = target, cut_after, hold
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.released = threading.Event()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.listener.close()
        self.released.set()  # end the hold: the server's side closes now

    def _serve(self):
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.socket()
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        upstream.connect(("127.0.0.1", self.target))
        request = client.recv(65536)
        upstream.sendall(request)
        sent = 0
        while sent < self.cut_after and (chunk := upstream.recv(1024)):
            client.sendall(chunk[: self.cut_after - sent])
            sent += len(chunk)
        client.close()
        self.released.wait(self.hold)
        upstream.close()
