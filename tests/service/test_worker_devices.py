"""A worker's DDP processes come from its own setting, not from the job, and only where
the run is DP-SGD on a generator that can spread (the end-to-end DDP run on real data
is tests/integration/test_cli.py, the accounting tests/unit/training/test_distributed.py)."""

from service.jobs.job_contract import JobOptions
from service.jobs.job_process import _train_spec

JOB = JobOptions(generator="tabular-ar", epsilon=1.0, delta=1e-5)


def test_the_worker_setting_decides_the_processes(monkeypatch):
    assert _train_spec(JOB).devices == 1
    monkeypatch.setenv("SANITAS_TRAINING_DEVICES", "2")
    assert _train_spec(JOB).devices == 2
    assert _train_spec(JOB.model_copy(update={"generator": "image-ar"})).devices == 2
    assert _train_spec(JOB.model_copy(update={"generator": "tabular-gan"})).devices == 1
    assert _train_spec(JOB.model_copy(update={"epsilon": None})).devices == 1


def test_the_job_contract_round_trips_and_refuses_what_it_does_not_know(tmp_path):
    """The spec the service writes and the result the child leaves are typed on both
    sides (service.jobs.job_contract); a progress line out of range is refused, not logged."""
    import pytest
    from pydantic import ValidationError

    from service.jobs.job_contract import JobResult, JobSpec, JobWorkspace, Progress

    work = JobWorkspace(tmp_path)
    stored = {"dataset_id": "d", "epsilon": 1.0, "delta": 1e-6, "generator": "tabular-ar",
              "audit": True, "format": "csv"}  # fmt: skip  # an older job's keys: ignored
    work.write_spec(JobSpec(data=str(work.data("csv")), schema={"columns": []}, job=stored))
    spec = work.read_spec()
    assert spec.job.audit and spec.job.report_real_images and spec.table_schema == {"columns": []}
    work.write_result(JobResult(generator="tabular-ar", privacy={"dp": True}, schema={},
                                gates=[], passed=True))  # fmt: skip
    assert work.read_result().passed and work.result.name == "result.json"
    assert Progress.parse(Progress(progress=0.5, message="epoch 1/2").line()).progress == 0.5
    with pytest.raises(ValidationError):
        Progress.parse('{"progress": 3, "message": "past the end"}')
