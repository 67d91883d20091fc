"""tabular-ar trained on a real table (statsmodels' Fair survey), DP and not."""

import numpy as np
import pandas as pd
import pytest

import evaluation
import training
from tests.unit.training.baselines import independent_dp_marginals
from training.errors import ConditionError

pytestmark = pytest.mark.slow


# The survey's codebook (Fair 1978) documents every code; affairs stays private.
CODEBOOK = {
    "rate_marriage": [1.0, 2.0, 3.0, 4.0, 5.0],
    "age": [17.5, 22.0, 27.0, 32.0, 37.0, 42.0],
    "yrs_married": [0.5, 2.5, 6.0, 9.0, 13.0, 16.5, 23.0],
    "children": [0.0, 1.0, 2.0, 3.0, 4.0, 5.5],
    "religious": [1.0, 2.0, 3.0, 4.0],
    "educ": [9.0, 12.0, 14.0, 16.0, 17.0, 20.0],
    "occupation": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    "occupation_husb": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
}


def codebook_schema(frame):
    schema = training.infer_schema(frame)
    for name, codes in CODEBOOK.items():
        schema = schema.with_public_categories(name, codes)
    return schema


@pytest.fixture(scope="session")
def dp_model(fair_split):
    train, _ = fair_split
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=1.0), seed=0)
    return training.fit(train, spec, schema=codebook_schema(train))


@pytest.fixture(scope="session")
def private_schema_model(fair_split):
    """Nothing declared public: every domain, bound and bin is learned under DP."""
    train, _ = fair_split
    return training.fit(train, training.TrainSpec(dp=training.DPConfig(epsilon=1.0), epochs=5))


@pytest.fixture(scope="session")
def plain_model(fair_split):
    train, _ = fair_split
    return training.fit(train, training.TrainSpec(dp=training.DPConfig(epsilon=None), seed=0))


def _codes(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Discretize like the marginal metrics do: codes for codes, deciles for affairs."""
    out = frame.copy()
    cuts = np.unique(np.quantile(reference["affairs"], np.linspace(0, 1, 11))[1:-1])
    out["affairs"] = np.searchsorted(cuts, frame["affairs"], side="right")
    return out


def _tv(a: pd.Series, b: pd.Series) -> float:
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    return float(0.5 * pa.subtract(pb, fill_value=0).abs().sum())


@pytest.mark.parametrize("which", ["dp_model", "private_schema_model"])
def test_reported_epsilon_is_at_most_the_target(which, request):
    model = request.getfixturevalue(which)
    p = model.privacy
    assert p.dp and 0.95 < p.epsilon <= 1.0
    assert 0 < p.epsilon_preprocessing < p.epsilon and 0 < p.epsilon_training <= p.epsilon
    assert 0 < p.epsilon_calibration < p.epsilon and len(p.calibration_pairs) == 36  # every pair
    # composition is sublinear: never above the parts' sum
    assert p.epsilon <= p.epsilon_preprocessing + p.epsilon_calibration + p.epsilon_training
    # one accountant step per optimizer step: all planned steps were taken
    assert p.steps == model.summary.epochs * int(1 / p.sample_rate)
    assert "affairs: bounds (DP octave and zoom histograms)" in p.private_metadata


def test_public_and_private_metadata_are_recorded(dp_model, private_schema_model):
    assert "age: categories" in dp_model.privacy.public_metadata
    # row count + affairs' three histograms (octaves, zoom, fine) + its frequent values
    assert dp_model.privacy.preprocessing_queries == 5
    assert not private_schema_model.privacy.public_metadata
    assert (
        "age: categories (DP partition selection)" in private_schema_model.privacy.private_metadata
    )


def test_non_dp_model_learns_the_marginals(plain_model, fair_split):
    """Every 1-way TV below 0.035.

    Why 0.035: two independent samples of these sizes (5,093 real, 20,000 synthetic)
    from the same distribution differ by TV 0.01-0.02 on these 4-10 category columns,
    and a model that drops one column's shape (e.g. affairs' zero spike) is off by
    more than 0.1; 0.035 leaves the model about two points of its own error.
    """
    train, _ = fair_split
    synthetic = plain_model.sample(20_000, seed=1)
    a, b = _codes(train, train), _codes(synthetic, train)
    worst = max(_tv(a[c], b[c]) for c in train.columns)
    assert worst < 0.035
    assert plain_model.privacy.dp is False and plain_model.privacy.epsilon is None


def test_dp_model_beats_independent_dp_marginals_on_pairs(dp_model, fair_split):
    """The baseline spends the same epsilon on one Gaussian histogram per column (joint
    sensitivity sqrt(C)) and samples the columns independently: good marginals, no pairs.
    """
    train, _ = fair_split
    independent = independent_dp_marginals(dp_model.encoder, train, epsilon=1.0)
    synthetic = dp_model.sample(len(train), seed=2)
    types = evaluation.sdtypes(train)
    dp_pairs = evaluation.quality_report(train, synthetic, types).column_pair_trends
    independent_pairs = evaluation.quality_report(train, independent, types).column_pair_trends
    print(f"pair trends: dp model {dp_pairs:.3f}, independent DP marginals {independent_pairs:.3f}")
    assert dp_pairs > independent_pairs + 0.02


def test_where_is_honoured_exactly(dp_model):
    out = dp_model.sample(2_000, seed=3, where={"children": 2.0, "affairs": 0.5})
    assert (out["children"] == 2.0).all() and (out["affairs"] == 0.5).all()
    assert out["rate_marriage"].nunique() > 1


def test_unknown_conditions_are_refused(dp_model):
    with pytest.raises(ConditionError, match="unknown columns"):
        dp_model.sample(10, where={"income": 3})
    with pytest.raises(ConditionError, match="not in its domain"):
        dp_model.sample(10, where={"children": 17.0})


def test_sampling_is_seeded_and_streams_in_chunks(dp_model):
    a = dp_model.sample(3_000, seed=7)
    b = pd.concat(list(dp_model.sample_chunks(3_000, seed=7, chunk_size=1_000)), ignore_index=True)
    assert len(a) == 3_000 and a.equals(dp_model.sample(3_000, seed=7))
    sizes = [len(c) for c in dp_model.sample_chunks(2_500, seed=7, chunk_size=1_000)]
    assert sizes == [1_000, 1_000, 500]
    assert not a.equals(dp_model.sample(3_000, seed=8))
    assert b.shape == a.shape


@pytest.mark.parametrize("where", [{}, {"children": 2.0}])
def test_shared_prefix_passes_draw_what_per_row_passes_draw(dp_model, where, monkeypatch):
    """The network runs once per distinct prefix while prefixes are few; the rows must
    be the ones a pass per row would give from the same random numbers."""
    import torch

    from training.generators.tabular_ar import network as tabular_ar

    fixed = dp_model._fixed_tokens(where)
    shared = dp_model.draw(8_192, fixed, torch.Generator().manual_seed(11))
    monkeypatch.setattr(tabular_ar, "SHARED_PREFIX_SHARE", 0.0)  # never share
    per_row = dp_model.draw(8_192, fixed, torch.Generator().manual_seed(11))
    assert torch.equal(shared, per_row)
    assert len(torch.unique(shared, dim=0)) > 1_000  # varied rows, not one prefix repeated


def test_bfloat16_blocks_draw_what_float32_draws(dp_model, monkeypatch):
    """Where the CPU has bfloat16 instructions, the residual blocks multiply in bfloat16
    (issue 21's sampling speed). From the same random numbers, nearly every row must
    be the one the float32 network draws, and the rest must not move the frequencies:
    a rounding of the logits, not another model."""
    import torch

    from training.generators.tabular_ar import network

    fixed = dp_model._fixed_tokens({})
    drawn = {}
    for bf16 in (True, False):
        monkeypatch.setattr(network, "bf16_matmul", lambda device, on=bf16: on)
        drawn[bf16] = dp_model.draw(20_000, fixed, torch.Generator().manual_seed(3))
    low, full = drawn[True], drawn[False]
    assert (low == full).all(1).float().mean() > 0.95
    for j in range(full.shape[1]):
        counts = [torch.bincount(t[:, j], minlength=int(full[:, j].max()) + 1) for t in (low, full)]
        size = max(len(c) for c in counts)
        shares = [torch.nn.functional.pad(c, (0, size - len(c))) / len(full) for c in counts]
        assert 0.5 * (shares[0] - shares[1]).abs().sum() < 0.01, j


def test_dtypes_come_back_as_in_the_input(dp_model, fair_split):
    train, _ = fair_split
    out = dp_model.sample(500, seed=4)
    assert list(out.columns) == list(train.columns)
    assert (out.dtypes == train.dtypes).all()


def test_mixed_types_and_integers_on_cps(cps):
    train = cps.sample(4_000, random_state=0)
    model = training.fit(train, training.TrainSpec(dp=training.DPConfig(epsilon=3.0), epochs=5))
    out = model.sample(1_000, seed=0)
    assert "rownames" not in out.columns
    assert out["education"].dtype == train["education"].dtype
    assert set(out["region"].dropna()) <= set(train["region"])
    assert model.privacy.epsilon <= 3.0
