import numpy as np
import pytest

from training.dp import mechanisms as mech
from training.preprocessing import fit_encoders
from training.schema import infer_schema


def test_octave_grid_known_answers():
    x = np.array([0.0, 1.0, 1.5, 2.0, -3.0, 2.0**-20])
    idx = mech.OctaveGrid.index(x)
    zero = mech.OctaveGrid.zero_index
    assert idx[0] == zero
    assert mech.OctaveGrid.edges(int(idx[1])) == (1.0, 2.0)
    assert idx[1] == idx[2] and idx[3] == idx[1] + 1
    assert mech.OctaveGrid.edges(int(idx[4])) == (-4.0, -2.0)
    assert mech.OctaveGrid.edges(int(idx[5]))[0] == 2.0**mech.MIN_EXPONENT


def test_partition_threshold_bounds_the_chance_a_single_row_shows():
    sigma, delta = 10.0, 1e-6
    tau = mech.partition_threshold(sigma, delta)
    # a category held by one row passes only if N(1, sigma^2) > tau
    draws = np.random.default_rng(0).normal(1.0, sigma, size=2_000_000)
    assert (draws > tau).mean() <= 5 * delta
    assert tau == pytest.approx(1 + sigma * 4.753424, rel=1e-5)


def test_exact_path_gives_the_data_quantiles(cps):
    wage = cps["wage"].to_numpy()
    bounds = mech.public_range(0.0, 20_000.0)
    edges = mech.fine_edges(bounds, integral=False)
    bucket = np.searchsorted(edges, wage, side="right") - 1
    counts = mech.noisy_histogram(bucket, len(edges) - 1, sigma=0.0, rng=np.random.default_rng())
    bins = mech.quantile_bins(edges, counts, n_bins=4, integral=False)
    cuts = [b.lo for b in bins[1:]]
    true = np.quantile(wage, [0.25, 0.5, 0.75])
    # edges interpolate inside buckets of 1/4 octave: within 20% of the true quartiles
    assert np.allclose(cuts, true, rtol=0.2)


def test_dp_bounds_are_not_the_exact_min_max(cps):
    schema = infer_schema(cps)
    fitted = fit_encoders(
        cps, schema, sigma=20.0, delta_selection=1e-6, max_bins=32, rng=np.random.default_rng(1)
    )
    wage = next(e for e in fitted.encoder.columns if e.name == "wage")
    lo, hi = wage.value_range
    assert (lo, hi) != (cps["wage"].min(), cps["wage"].max())
    assert lo <= np.quantile(cps["wage"], 0.01) and hi >= np.quantile(cps["wage"], 0.95)
    assert "wage: bounds (DP octave and zoom histograms)" in fitted.private_metadata


def test_partition_selection_drops_rare_categories(cps):
    frame = cps.copy()
    frame.loc[frame.index[:3], "region"] = "atlantis"  # three rows: below any DP threshold
    schema = infer_schema(frame)
    fitted = fit_encoders(
        frame, schema, sigma=5.0, delta_selection=1e-6, max_bins=32, rng=np.random.default_rng(2)
    )
    region = next(e for e in fitted.encoder.columns if e.name == "region")
    assert set(region.categories) == {"northeast", "midwest", "south", "west"}
    exact = fit_encoders(
        frame, schema, sigma=0.0, delta_selection=0.0, max_bins=32, rng=np.random.default_rng()
    )
    assert "atlantis" in next(e for e in exact.encoder.columns if e.name == "region").categories


def test_noisy_histogram_noise_has_the_promised_scale():
    rng = np.random.default_rng(3)
    noisy = mech.noisy_histogram(np.zeros(0, dtype=np.int64), 50_000, sigma=7.0, rng=rng)
    assert noisy.std() == pytest.approx(7.0, rel=0.02)


def test_integer_columns_keep_their_top_values_under_public_bounds(cps):
    """A codebook's bounds are the data's own min and max: the largest integer must stay
    a value of its own (education 18: 7% of CPS1988), and a quantile-binned integer
    column must reach its upper tail (experience above 46: 3% of rows)."""
    frame = cps.drop(columns=["rownames"])
    schema = infer_schema(frame)
    for name in ["education", "experience"]:
        schema = schema.with_public_bounds(name, float(frame[name].min()), float(frame[name].max()))
    encoder = fit_encoders(
        frame, schema, sigma=0.0, delta_selection=0.0, max_bins=32, rng=np.random.default_rng()
    ).encoder
    back = encoder.decode(encoder.encode(frame), np.random.default_rng(0))
    assert (back["education"] == frame["education"]).all()
    experience = next(e for e in encoder.columns if e.name == "experience")
    top = experience.bins[-1][1]
    assert np.quantile(frame["experience"], 0.999) <= top + 1 <= frame["experience"].max() + 1
    assert back["experience"].max() > np.quantile(frame["experience"], 0.99)
