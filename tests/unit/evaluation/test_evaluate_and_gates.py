"""evaluate() end to end on real rows: the gates separate copies from unseen rows."""

import json

import pytest

from evaluation.audit import AuditResult
from evaluation.errors import MetricError
from evaluation.evaluate import evaluate
from evaluation.spec import EvalSpec, Thresholds


@pytest.fixture(scope="module")
def copied(cps_three):
    train, holdout, _ = cps_three
    return evaluate(train, holdout, train, spec=EvalSpec(targets=["parttime"]))


@pytest.fixture(scope="module")
def unseen(cps_three):
    train, holdout, independent = cps_three
    return evaluate(train, holdout, independent, spec=EvalSpec(targets=["parttime"]))


def _status(evaluation):
    return {g["name"]: g["status"] for g in evaluation.gates}


def test_training_rows_offered_as_synthetic_fail_every_memorization_gate(copied):
    status = _status(copied)
    assert status["exact_copies"] == "fail"
    assert status["dcr_share"] == "fail"
    assert status["membership_inference"] == "fail"
    assert status["privacy_audit"] == "not_run"
    assert not copied.passed
    # anonymeter sees it too: inferring parttime from the other columns works on train rows
    inference = next(r for r in copied.data["risks"] if r["name"] == "inference:parttime")
    assert inference["ci"][0] > 0.5


def test_independent_real_rows_pass_every_gate(unseen):
    assert set(_status(unseen).values()) <= {"pass", "not_run"}
    assert unseen.passed
    for risk in unseen.data["risks"]:
        assert risk["ci"][0] < 0.1, risk
    [u] = unseen.data["utility"]
    assert u["metric"] == "roc_auc" and abs(u["synthetic"] - u["real"]) < 0.05


def test_report_data_is_strict_json(unseen):
    text = json.dumps(unseen.data, allow_nan=False)
    assert json.loads(text)["schema_version"] == "1.0"


def test_audit_gate_compares_the_bound_with_the_claim(cps_three):
    train, holdout, independent = cps_three
    spec = EvalSpec(targets=["parttime"], risks=False)
    privacy = {"dp": True, "epsilon": 1.0, "delta": 1e-5}
    high = AuditResult(2.5, 0.95, 400, 40, 39, "model log-likelihood")
    low = AuditResult(0.0, 0.95, 400, 8, 5, "model log-likelihood")
    failed = evaluate(train, holdout, independent, spec=spec, privacy=privacy, audit=high)
    passed = evaluate(train, holdout, independent, spec=spec, privacy=privacy, audit=low)
    assert _status(failed)["privacy_audit"] == "fail" and "exceeds" in failed.gates[3]["reason"]
    assert _status(passed)["privacy_audit"] == "pass"
    assert passed.data["epsilon_lower_bound"] == 0.0


def test_fidelity_floor_is_configurable(cps_three):
    train, holdout, independent = cps_three
    spec = EvalSpec(targets=["parttime"], risks=False, thresholds=Thresholds(fidelity_min=0.999))
    result = evaluate(train, holdout, independent, spec=spec)
    assert _status(result)["fidelity"] == "fail"


def test_unknown_target_is_named(cps_three):
    train, holdout, independent = cps_three
    with pytest.raises(MetricError, match="'salary'"):
        evaluate(train, holdout, independent, spec=EvalSpec(targets=["salary"], risks=False))
