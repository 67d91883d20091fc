"""Taking an uploaded table in: check it, infer its schema from a sample, encrypt it.

The multipart parser has already spooled the file to a temporary file on disk; from
there everything streams (row count, schema sample, encryption), so memory stays
bounded whatever the file's size. Nothing is left behind when a check fails.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow.parquet as pq

from service.problems import Problem
from service.storage import store_encrypted

__all__ = ["StoredTable", "store_table"]

SAMPLE_ROWS = 100_000
CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredTable:
    path: Path  # relative to data_dir
    format: str
    rows: int
    bytes: int
    sha256: str
    schema: dict[str, Any]


def _format(filename: str | None) -> str:
    suffix = Path(filename or "").suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    raise Problem(
        415,
        "Unsupported Media Type",
        f"file={filename!r}: upload a table as .csv or .parquet, images as .npz or .zip",
    )


def _sample_csv(raw: BinaryIO) -> tuple[pd.DataFrame, int]:
    raw.seek(0)
    head = raw.read(64 * 1024)
    if not head.strip():
        raise Problem(422, "Empty Table", "the uploaded file is empty")
    if b"\x00" in head:
        raise Problem(422, "Malformed Table", "the CSV holds NUL bytes: is it a binary file?")
    raw.seek(0)
    text = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")
    try:
        reader = pd.read_csv(text, chunksize=SAMPLE_ROWS, low_memory=False)
        sample = next(reader)
        rows = len(sample) + sum(len(chunk) for chunk in reader)
    except StopIteration as e:
        raise Problem(422, "Empty Table", "the CSV has a header but no rows") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as e:
        raise Problem(422, "Malformed Table", f"the CSV cannot be parsed: {e}") from e
    except UnicodeDecodeError as e:
        raise Problem(
            422, "Malformed Table", f"the CSV is not UTF-8: {e.reason} at byte {e.start}"
        ) from e
    finally:
        text.detach()
    return sample, rows


def _sample_parquet(raw: BinaryIO) -> tuple[pd.DataFrame, int]:
    raw.seek(0)
    try:
        parquet = pq.ParquetFile(raw)
        rows = parquet.metadata.num_rows
        batch = next(parquet.iter_batches(batch_size=SAMPLE_ROWS), None)
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) or OSError
        raise Problem(422, "Malformed Table", f"the Parquet file cannot be read: {e}") from e
    if batch is None or rows == 0:
        raise Problem(422, "Empty Table", "the Parquet file has no rows")
    return batch.to_pandas(), rows


def _infer(sample: pd.DataFrame) -> dict[str, Any]:
    from training.errors import SchemaError
    from training.schema import infer_schema

    try:
        return infer_schema(sample).model_dump(mode="json")
    except SchemaError as e:
        raise Problem(422, "Unusable Table", str(e)) from e


def store_table(
    raw: BinaryIO, filename: str | None, *, key: bytes, data_dir: Path, max_bytes: int
) -> StoredTable:
    """Validate, infer the schema, and write the encrypted copy under data_dir/datasets."""
    fmt = _format(filename)
    raw.seek(0, os.SEEK_END)
    size = raw.tell()
    if size > max_bytes:
        raise Problem(
            413, "Upload Too Large", f"the file has {size:,} bytes; the limit is {max_bytes:,}"
        )
    sample, rows = _sample_csv(raw) if fmt == "csv" else _sample_parquet(raw)
    schema = _infer(sample)
    relative, sha256 = store_encrypted(key, raw, data_dir, f".{fmt}")
    return StoredTable(relative, fmt, rows, size, sha256, schema)
