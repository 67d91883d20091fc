"""A worker's DDP processes come from its own setting, not from the job, and only where
the run is DP-SGD on a generator that can spread (the end-to-end DDP run on real data
is tests/integration/test_cli.py, the accounting tests/unit/training/test_distributed.py)."""

from service.job_process import _train_spec

JOB = {"generator": "tabular-ar", "epsilon": 1.0, "delta": 1e-5}


def test_the_worker_setting_decides_the_processes(monkeypatch):
    assert _train_spec(JOB).devices == 1
    monkeypatch.setenv("SANITAS_TRAINING_DEVICES", "2")
    assert _train_spec(JOB).devices == 2
    assert _train_spec({**JOB, "generator": "image-ar"}).devices == 2
    assert _train_spec({**JOB, "generator": "tabular-gan"}).devices == 1
    assert _train_spec({**JOB, "epsilon": None}).devices == 1
