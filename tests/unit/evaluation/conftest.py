"""Three disjoint real samples of CPS1988: a training set, a holdout, and an independent
sample that stands in for a perfectly private generator's output."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def cps_three(cps: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rows = cps.drop(columns=["rownames"]).sample(frac=1.0, random_state=11)
    return rows.iloc[:6_000], rows.iloc[6_000:9_000], rows.iloc[9_000:15_000]
