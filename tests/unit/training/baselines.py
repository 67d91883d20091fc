"""Baselines that trained table generators must beat."""

import numpy as np
import pandas as pd


def independent_dp_marginals(encoder, train: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """Spend ``epsilon`` on one Gaussian histogram per column (joint sensitivity sqrt(C))
    and sample the columns independently: good marginals, no pairs."""
    from training import privacy

    tokens = encoder.encode(train)
    z = privacy.solve_preprocessing_noise(epsilon=epsilon, delta=1e-5, accountant="prv")
    sigma = z * np.sqrt(tokens.shape[1])
    rng = np.random.default_rng(0)
    columns = []
    for j, size in enumerate(encoder.vocab_sizes):
        noisy = np.bincount(tokens[:, j], minlength=size) + rng.normal(0, sigma, size)
        p = np.clip(noisy, 0, None)
        columns.append(rng.choice(size, size=len(train), p=p / p.sum()))
    return encoder.decode(np.stack(columns, 1), rng)
