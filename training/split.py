"""The train/holdout split of an upload, built so that one row changes one row.

Why not ``frame.sample(frac=0.8, random_state=0)``: a permutation of the whole table
is a function of every row's position, so removing one uploaded row re-draws it and
the training set changes in thousands of rows; the add/remove-one-row guarantee of
the model trained on it is then void. Here each row's side is decided by a keyed hash
of that row's own values (SipHash for tables, BLAKE2b for images) under a key drawn
from ``training.dp.secret_random``: adding or removing a row changes the training set
by that row at most, whatever the key, and the key is secret, so nobody can tell in
advance which side a row lands on.

Identical rows are told apart by their occurrence: the k-th copy of a row is hashed
with k. A hash of the values alone would put every copy on one side, so no holdout
row could ever equal a training row and the evaluation's yardsticks (the holdout's
exact-copy rate, the DCR share's exchangeable train and holdout rows) would be wrong
on every table with repeated rows. With the occurrence, copies fall on each side like
rows of a random split, and one copy added or removed changes the *multiset* of
training rows by one copy at most (which copy carries which index does not matter:
copies are the same record).

Values are hashed in a normal form (numbers as float64, anything else as text), so a
column whose dtype changes with one row (an integer column whose only missing value
is removed) keeps every other row where it was.
"""

from __future__ import annotations

import hashlib
import string

import numpy as np
import pandas as pd

from training.dp.secret_random import secret_bits

__all__ = [
    "HOLDOUT_SHARE",
    "image_holdout_mask",
    "new_split_key",
    "split_images",
    "split_table",
    "table_holdout_mask",
]

HOLDOUT_SHARE = 0.2
_KEY_ALPHABET = string.ascii_letters + string.digits  # pandas' hash_key: 16 utf-8 bytes


def new_split_key() -> str:
    """A fresh secret key (16 characters of 62: about 95 bits)."""
    bits, chars = secret_bits(96), []
    for _ in range(16):
        bits, digit = divmod(bits, len(_KEY_ALPHABET))
        chars.append(_KEY_ALPHABET[digit])
    return "".join(chars)


def _normal_form(frame: pd.DataFrame) -> pd.DataFrame:
    columns = {}
    for i in range(frame.shape[1]):
        values = frame.iloc[:, i]
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            columns[f"c{i}"] = values.astype("float64")
        else:
            text = values.astype(object).where(values.notna(), "\x00<missing>")
            columns[f"c{i}"] = text.astype(str)
    return pd.DataFrame(columns, index=frame.index)


def _holdout(hashes: np.ndarray, share: float, key: str) -> np.ndarray:
    """Each copy of a row hashed again with its occurrence number (0 for the first)."""
    occurrence = pd.Series(hashes).groupby(hashes, sort=False).cumcount().to_numpy()
    spread = pd.util.hash_pandas_object(
        pd.DataFrame({"row": hashes.astype(np.uint64), "copy": occurrence}),
        index=False, hash_key=key,
    )  # fmt: skip
    uniform = spread.to_numpy().astype(np.uint64) / float(2**64)
    return np.asarray(uniform < share)


def table_holdout_mask(
    frame: pd.DataFrame, *, key: str, share: float = HOLDOUT_SHARE
) -> np.ndarray:
    """True for the rows held out: a function of each row's values, how many identical
    rows come before it, and ``key``; nothing else."""
    hashes = pd.util.hash_pandas_object(_normal_form(frame), index=False, hash_key=key)
    return _holdout(hashes.to_numpy(), share, key)


def split_table(
    frame: pd.DataFrame, *, key: str | None = None, share: float = HOLDOUT_SHARE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout); ``key=None`` draws a secret one (the only choice in production)."""
    held = table_holdout_mask(frame, key=key or new_split_key(), share=share)
    return frame[~held], frame[held]


def image_holdout_mask(
    images: np.ndarray, labels: np.ndarray, *, key: str, share: float = HOLDOUT_SHARE
) -> np.ndarray:
    """True for the images held out: a function of each image, its label, how many
    identical (image, label) pairs come before it, and ``key``."""
    secret = key.encode()
    hashes = np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(
                    image.tobytes() + int(label).to_bytes(8, "little", signed=True),
                    key=secret, digest_size=8,
                ).digest(),
                "little",
            )
            for image, label in zip(images, labels, strict=True)
        ),
        dtype=np.uint64,
        count=len(images),
    )  # fmt: skip
    return _holdout(hashes, share, key)


def split_images(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    key: str | None = None,
    share: float = HOLDOUT_SHARE,
) -> np.ndarray:
    """The holdout mask of an image set; ``key=None`` draws a secret one."""
    return image_holdout_mask(images, labels, key=key or new_split_key(), share=share)
