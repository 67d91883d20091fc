"""One data directory whatever folder a command runs in, and the key kept apart from it
(issue 22): a key made by `sanitas keys create` in one folder opens a server started in
another, and the encryption key file is not in the data directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.service.conftest import _free_port

pytestmark = pytest.mark.slow


def test_commands_in_any_folder_share_the_default_data_dir_and_the_key_is_apart(
    tmp_path, cps_small
):
    home = {"XDG_DATA_HOME": str(tmp_path / "share"), "XDG_CONFIG_HOME": str(tmp_path / "conf")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANITAS_")} | home
    cli = [sys.executable, "-m", "service.cli"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    made = subprocess.run([*cli, "keys", "create", "--role", "owner", "--project", "p"],
                          cwd=tmp_path / "a", env=env, capture_output=True, text=True,
                          check=True)  # fmt: skip
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([*cli, "serve", "--port", str(port)], cwd=tmp_path / "b",
                              env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {made.stdout.strip()}"}
        for _ in range(150):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        body = cps_small.head(600).to_csv(index=False)
        r = httpx.post(f"{url}/v1/datasets", headers=auth, files={"file": ("cps.csv", body)},
                       data={"name": "cps", "epsilon_budget": "1"})  # fmt: skip
        assert r.status_code == 201, r.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    data_dir = tmp_path / "share" / "sanitas"
    assert (data_dir / "sanitas.db").exists() and list((data_dir / "datasets").glob("*.enc"))
    assert (tmp_path / "conf" / "sanitas" / "secret.key").exists()
    assert not list(data_dir.rglob("*.key")) and not list((tmp_path / "a").iterdir())
    said = (tmp_path / "serve.log").read_text()
    assert f"data {data_dir}" in said and str(tmp_path / "conf" / "sanitas" / "secret.key") in said
