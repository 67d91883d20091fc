"""The audited training job on a real table: the bound respects DP, and catches a
model that memorizes; samples of the DP model pass the release gates."""

import pandas as pd
import pytest

import training
from evaluation.spec import EvalSpec
from service.jobs.pipeline import evaluate_tables, save_audit, train_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fair_parts(fair: pd.DataFrame):
    rows = fair.sample(frac=1.0, random_state=5)
    return rows.iloc[:2_000], rows.iloc[2_000:4_000]


@pytest.fixture(scope="module")
def codebook(fair: pd.DataFrame) -> training.TableSchema:
    """The survey's answer codes are public (its codebook): declared, not learned.

    On 2,000 rows a DP category search at this budget keeps only categories of 540+
    rows, so without the codebook most answers would collapse into one bucket.
    """
    schema = training.infer_schema(fair)
    for col in schema.modelled:
        if col.kind == training.ColumnKind.CATEGORICAL:
            schema = schema.with_public_categories(col.name, sorted(fair[col.name].unique()))
    return schema


def test_non_dp_model_that_overfits_gets_a_clearly_positive_bound(fair_parts):
    train, _ = fair_parts
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=None), epochs=100, seed=1)
    model, audit = train_model(train, spec, audit=True, canaries=200)
    assert model.privacy.dp is False
    # 200 canaries cap a perfect attack near 2.5; memorized canaries get close to it
    assert audit.epsilon_lower_bound > 1.0, audit
    assert audit.correct / audit.guesses > 0.9


def test_dp_model_bound_stays_within_its_epsilon_and_its_samples_pass(
    fair_parts, codebook, tmp_path
):
    train, holdout = fair_parts
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=1.0), seed=1)
    model, audit = train_model(train, spec, schema=codebook, audit=True, canaries=200)
    assert audit.epsilon_lower_bound <= model.privacy.epsilon <= 1.0 + 1e-9
    directory = model.save(tmp_path / "model")
    save_audit(audit, directory)
    synthetic = model.sample(len(train), seed=2)
    result = evaluate_tables(
        train, holdout, synthetic, spec=EvalSpec(targets=["rate_marriage"]), model_dir=directory
    )
    status = {g["name"]: g["status"] for g in result.gates}
    assert status == {"exact_copies": "pass", "dcr_share": "pass",
                      "membership_inference": "pass", "privacy_audit": "pass",
                      "fidelity": "pass"}, result.gates  # fmt: skip
    assert result.data["claimed_epsilon"] == pytest.approx(model.privacy.epsilon)
    assert result.data["epsilon_lower_bound"] == audit.epsilon_lower_bound
    # a DP artifact keeps no loss curve, so the report has none
    assert result.data["training"]["epoch_losses"] == []


def test_black_box_attack_catches_a_generator_that_copies_its_training_rows(fair_parts, codebook):
    """The attack tabular-gan's audit uses, on a "generator" that emits its training set
    (canaries included): it must find the planted canaries, or its bounds mean nothing."""
    import numpy as np

    from evaluation.audit import epsilon_lower_bound, planted_half, sample_match_scores
    from service.jobs.pipeline import kinds_of
    from training.canaries import table_canaries
    from training.preprocessing import fit_encoders

    train, _ = fair_parts
    encoder = fit_encoders(
        train, codebook, sigma=0.0, delta_selection=0.0, max_bins=32,
        rng=np.random.default_rng(0),
    ).encoder  # fmt: skip
    rng = np.random.default_rng(3)
    rows = table_canaries(encoder, codebook, 200, rng)
    included = planted_half(200, rng)
    kinds = kinds_of(codebook)
    copied = pd.concat([train, rows[included]], ignore_index=True)
    scores = sample_match_scores(copied, rows, kinds)
    audit = epsilon_lower_bound(scores, included, delta=1e-5)
    # canaries mix codebook values at random: now and then a left-out one happens to lie
    # near a real row (99 of 100 top guesses right in one draw)
    assert audit.epsilon_lower_bound > 1.0 and audit.correct / audit.guesses > 0.95, audit
    assert np.isfinite(scores).all()


def test_audited_dp_gan_stays_within_its_epsilon(fair_parts, codebook):
    """tabular-gan under DP at epsilon 1 with 200 canaries in the run, attacked through
    its samples: the measured lower bound may not exceed the claimed epsilon."""
    train, _ = fair_parts
    spec = training.TrainSpec(
        generator="tabular-gan", dp=training.DPConfig(epsilon=1.0), epochs=20, seed=1
    )
    model, audit = train_model(train, spec, schema=codebook, audit=True, canaries=200)
    assert model.name == "tabular-gan" and audit.attack == "synthetic rows near each canary"
    assert audit.epsilon_lower_bound <= model.privacy.epsilon <= 1.0 + 1e-9


def test_nearest_image_attack_catches_a_generator_that_copies_its_images(digits_split):
    """The attack image-gan's audit uses, on a "generator" that emits its training images
    (canaries included): it must find them."""
    import numpy as np

    from evaluation.audit import epsilon_lower_bound, nearest_image_scores, planted_half
    from training.canaries import image_canaries

    train, _ = digits_split
    rng = np.random.default_rng(3)
    images, _ = image_canaries(train.shape, 10, 200, rng)
    included = planted_half(200, rng)
    copied = np.concatenate([train.images, images[included]])
    scores = nearest_image_scores(copied, images)
    audit = epsilon_lower_bound(scores, included, delta=1e-5)
    assert audit.epsilon_lower_bound > 1.0 and audit.correct == audit.guesses, audit


def test_audited_dp_image_gan_stays_within_its_epsilon(digits_split):
    from service.jobs.pipeline import train_model

    train, _ = digits_split
    spec = training.TrainSpec(
        generator="image-gan", dp=training.DPConfig(epsilon=2.0), epochs=5, seed=2
    )
    model, audit = train_model(train, spec, audit=True, canaries=100)
    assert audit.attack == "nearest synthetic image (image canaries)"
    assert audit.epsilon_lower_bound <= model.privacy.epsilon <= 2.0 + 1e-9


def test_audited_image_run_stays_within_its_epsilon_and_reports_it(digits_split, tmp_path):
    """image-ar under DP with 100 image canaries in the run: the measured lower bound may
    not exceed the claimed epsilon, and the audit gate says so in the image report."""
    import numpy as np

    from evaluation.images import LabeledImages, evaluate_images, image_report_data
    from evaluation.report import write_report
    from service.jobs.pipeline import train_model

    train, held = digits_split
    spec = training.TrainSpec(
        generator="image-ar", dp=training.DPConfig(epsilon=2.0), epochs=3, seed=2
    )
    model, audit = train_model(train, spec, audit=True, canaries=100)
    assert audit.canaries == 100 and "image canaries" in audit.attack
    assert audit.epsilon_lower_bound <= model.privacy.epsilon + 1e-9

    def labeled(d):
        return LabeledImages(d.images, np.asarray(d.classes, dtype=object)[d.labels])

    synthetic = model.sample(300, seed=0)
    result = evaluate_images(labeled(train), labeled(held), labeled(synthetic), train.classes,
                             audit=audit, claimed_epsilon=model.privacy.epsilon)  # fmt: skip
    gate = next(g for g in result.gates if g.name == "privacy_audit")
    assert gate.status == "pass", gate
    privacy = model.privacy.model_dump(mode="json")
    data = image_report_data(result, train=labeled(train), synthetic=labeled(synthetic),
                             classes=train.classes, privacy=privacy)  # fmt: skip
    paths = write_report(data, tmp_path / "report", pdf=False)
    assert "100 image canaries" in paths["html"].read_text()
