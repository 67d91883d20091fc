"""tabular-gan trained on a real table (statsmodels' Fair survey), DP and not."""

import pandas as pd
import pytest

import evaluation
import training
from tests.unit.training.baselines import independent_dp_marginals
from training.errors import ArtifactError, ConditionError

pytestmark = pytest.mark.slow

KINDS = {"rate_marriage": "categorical", "age": "numerical", "yrs_married": "numerical",
         "children": "numerical", "religious": "categorical", "educ": "numerical",
         "occupation": "categorical", "occupation_husb": "categorical",
         "affairs": "numerical"}  # fmt: skip


@pytest.fixture(scope="module")
def dp_gan(fair_split):
    train, _ = fair_split
    spec = training.TrainSpec(generator="tabular-gan", dp=training.DPConfig(epsilon=1.0))
    return training.fit(train, spec)


def test_epsilon_is_within_the_target_and_only_the_discriminator_steps_count(dp_gan):
    p = dp_gan.privacy
    assert p.dp and p.epsilon <= 1.0 + 1e-9 and p.target_epsilon == 1.0
    assert p.epsilon_preprocessing > 0 and p.epsilon_training > 0
    assert p.noise_multiplier > 0 and 0 < p.sample_rate < 1 and p.steps > 100
    assert "epoch_losses" not in dp_gan.training  # unnoised losses stay out of DP artifacts


def test_artifact_round_trip_samples_the_same_rows(dp_gan, tmp_path):
    directory = dp_gan.save(tmp_path / "gan")
    loaded = training.load(directory)
    assert loaded.name == "tabular-gan"
    pd.testing.assert_frame_equal(loaded.sample(500, seed=4), dp_gan.sample(500, seed=4))
    (directory / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ArtifactError):
        training.load(directory)


def test_where_is_honoured_exactly(dp_gan, fair_split):
    train, _ = fair_split
    rows = dp_gan.sample(2_000, seed=1, where={"occupation": 3.0, "children": 2.0})
    assert (rows["occupation"] == 3.0).all() and (rows["children"] == 2.0).all()
    assert list(rows.columns) == list(train.columns)
    assert dict(rows.dtypes) == dict(train.dtypes)
    with pytest.raises(ConditionError, match="unknown columns"):
        dp_gan.sample(5, where={"salary": 1})


def test_dp_gan_beats_independent_dp_marginals_on_pairs(dp_gan, fair_split):
    """The baseline spends the same epsilon on one Gaussian histogram per column (joint
    sensitivity sqrt(C)) and samples the columns independently: good marginals, no pairs.
    The DP GAN at epsilon 1 must carry the pairs the baseline cannot."""
    train, _ = fair_split
    independent = independent_dp_marginals(dp_gan.encoder, train, epsilon=1.0)
    gan = evaluation.quality_report(train, dp_gan.sample(len(train), seed=2), KINDS)
    base = evaluation.quality_report(train, independent, KINDS)
    print(f"dp gan {gan}, independent DP marginals {base}")
    assert gan.column_pair_trends > base.column_pair_trends + 0.02


def test_an_empty_poisson_batch_is_a_dp_step_the_accountant_counts(fair_split, monkeypatch):
    """Poisson sampling that draws nothing (forced here on every third step) still takes
    the discriminator's DP step on the fakes: the accountant records the planned steps.
    The GANs once skipped such a step (issue 19, A4)."""
    from opacus.data_loader import wrap_collate_with_empty
    from torch.utils.data import DataLoader, Sampler
    from torch.utils.data._utils.collate import default_collate

    from training import privacy

    class EveryThirdEmpty(Sampler):
        def __init__(self, rows: int, steps: int) -> None:
            self.rows, self.steps = rows, steps

        def __len__(self) -> int:
            return self.steps

        def __iter__(self):
            for step in range(self.steps):
                yield [] if step % 3 == 0 else list(range(step, self.rows, 7))

    def loader(dataset, *, sample_rate):
        collate = wrap_collate_with_empty(
            collate_fn=default_collate, sample_empty_shapes=[(0, *dataset[0][0].shape)],
            dtypes=[dataset[0][0].dtype],
        )  # fmt: skip
        sampler = EveryThirdEmpty(len(dataset), int(1 / sample_rate))
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)

    monkeypatch.setattr(privacy, "poisson_loader", loader)
    train, _ = fair_split
    spec = training.TrainSpec(
        generator="tabular-gan", dp=training.DPConfig(epsilon=1.0, calibration_share=0.0),
        epochs=2, batch_size=512,
    )  # fmt: skip
    model = training.fit(train.head(2_000), spec)
    planned = model.summary.epochs * int(1 / model.privacy.sample_rate)
    assert model.privacy.steps == planned and planned >= 6
