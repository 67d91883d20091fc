"""Taking an uploaded table in: check it, infer its schema from a sample, encrypt it.

The multipart parser has already spooled the file to a temporary file on disk; from
there everything streams (row count, schema sample, encryption), so memory stays
bounded whatever the file's size. Nothing is left behind when a check fails.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from service.errors import Problem
from service.storage.encrypted import store_encrypted
from service.storage.tables import sniff_delimiter

__all__ = ["StoredTable", "store_table"]

SAMPLE_ROWS = 100_000
CHUNK = 1 << 20
MAX_COLUMNS = 1_000
MAX_LINE_BYTES = 4 << 20  # a longer line is not a table row (and would be parsed whole)
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class StoredTable:
    path: Path  # relative to data_dir
    format: str
    rows: int
    bytes: int
    sha256: str
    schema: dict[str, Any]


def _format(filename: str | None) -> tuple[str, bool]:
    """The stored format and whether the upload is gzip-compressed. Delimited text
    (.csv, .tsv, either .gz) is stored as ``csv``, decompressed; its delimiter is read
    off its header line when it is parsed."""
    name = (filename or "").lower()
    gzipped = name.endswith(".gz")
    suffix = Path(name.removesuffix(".gz")).suffix
    if suffix in (".csv", ".tsv"):
        return "csv", gzipped
    if suffix == ".parquet" and not gzipped:
        return "parquet", False
    raise Problem(
        415,
        "Unsupported Media Type",
        f"file={filename!r}: upload a table as .csv, .tsv (either may be .gz) or .parquet, "
        "images as .npz or .zip",
    )


def _gunzip_into(raw: BinaryIO, out: BinaryIO, max_bytes: int) -> None:
    """Decompress the upload into ``out``, refused past ``max_bytes`` of output (a
    small archive can inflate without bound)."""
    written = 0
    raw.seek(0)
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as source:
            while block := source.read(CHUNK):
                written += len(block)
                if written > max_bytes:
                    raise Problem(
                        413, "Upload Too Large",
                        f"the file decompresses past the limit of {max_bytes:,} bytes",
                    )  # fmt: skip
                out.write(block)
    except (OSError, EOFError, zlib.error) as e:
        raise Problem(422, "Malformed Table", f"the .gz file cannot be decompressed: {e}") from e


def _check_head(head: bytes) -> None:
    """Name what the file really is when it is not a UTF-8 CSV at all."""
    if not head.strip():
        raise Problem(422, "Empty Table", "the uploaded file is empty")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Problem(422, "Malformed Table", "the CSV is UTF-16; save it as UTF-8")
    if head.startswith(b"PK\x03\x04"):
        raise Problem(
            422, "Malformed Table", "the file is a ZIP archive (an Excel .xlsx?), not a CSV"
        )
    if b"\x00" in head:
        raise Problem(422, "Malformed Table", "the CSV holds NUL bytes: is it a binary file?")


def _check_lines(raw: BinaryIO) -> None:
    """Refuse a line longer than MAX_LINE_BYTES before a parser tries to hold it whole."""
    raw.seek(0)
    run = longest = 0  # run: bytes since the last newline
    while block := raw.read(CHUNK):
        newlines = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))
        if len(newlines) == 0:
            run += len(block)
        else:
            inner = int(np.diff(newlines).max(initial=1)) - 1
            longest = max(longest, run + int(newlines[0]), inner)
            run = len(block) - int(newlines[-1]) - 1
        if max(longest, run) > MAX_LINE_BYTES:
            raise Problem(
                422,
                "Malformed Table",
                f"a line runs over {MAX_LINE_BYTES:,} bytes without a newline: not a CSV table",
            )


def _checked_rest(sample: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> tuple[dict[str, Any], int]:
    """The schema inferred from the first chunk, and the row count of the whole file
    with every later chunk held to that schema: a bad row 100,001 is refused here, at
    upload, not by the job after its charge."""
    from training.errors import SchemaError
    from training.schema import TableSchema

    schema = _infer(sample)
    typed = TableSchema.model_validate(schema)
    rows = len(sample)
    for chunk in rest:
        try:
            typed.validate_frame(chunk)
        except SchemaError as e:
            raise Problem(
                422, "Malformed Table", f"rows {rows + 1:,} to {rows + len(chunk):,}: {e}"
            ) from e
        rows += len(chunk)
    return schema, rows


def _sample_csv(raw: BinaryIO) -> tuple[dict[str, Any], int]:
    raw.seek(0)
    _check_head(raw.read(64 * 1024))
    _check_lines(raw)
    raw.seek(0)
    sep = sniff_delimiter(raw.read(64 * 1024).removeprefix(UTF8_BOM))
    raw.seek(0)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
    try:
        header = pd.read_csv(text, nrows=0, sep=sep)
        if len(header.columns) > MAX_COLUMNS:
            raise Problem(
                422,
                "Too Many Columns",
                f"the CSV has {len(header.columns):,} columns; at most {MAX_COLUMNS:,}",
            )
        text.seek(0)
        reader = pd.read_csv(text, chunksize=SAMPLE_ROWS, low_memory=False, sep=sep)
        sample = next(reader)
        schema, rows = _checked_rest(sample, reader)
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
    return schema, rows


def _sample_parquet(raw: BinaryIO) -> tuple[dict[str, Any], int]:
    """Columns and rows are read from the footer before any page is decoded; then the
    whole file is decoded batch by batch and must hold the rows its footer declares."""
    raw.seek(0)
    try:
        parquet = pq.ParquetFile(raw)
        metadata = parquet.metadata
        arrow_schema = parquet.schema_arrow
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) or OSError
        raise Problem(422, "Malformed Table", f"the Parquet file cannot be read: {e}") from e
    if metadata.num_columns > MAX_COLUMNS or len(arrow_schema) > MAX_COLUMNS:
        columns = max(metadata.num_columns, len(arrow_schema))
        raise Problem(422, "Too Many Columns", f"{columns:,} columns; at most {MAX_COLUMNS:,}")
    nested = [f.name for f in arrow_schema if pa.types.is_nested(f.type)]
    if nested:
        raise Problem(
            422, "Unsupported Column Type", f"columns {nested} hold nested values (lists, structs)"
        )
    declared = metadata.num_rows
    in_groups = sum(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    if declared <= 0:
        raise Problem(422, "Empty Table", "the Parquet file has no rows")
    if in_groups != declared:
        raise Problem(
            422, "Malformed Table",
            f"the Parquet footer declares {declared:,} rows but its row groups hold {in_groups:,}",
        )  # fmt: skip
    try:
        batches = (b.to_pandas() for b in parquet.iter_batches(batch_size=SAMPLE_ROWS))
        first = next(batches, None)
        if first is None:
            raise Problem(422, "Empty Table", "the Parquet file has no rows")
        schema, rows = _checked_rest(first, batches)
    except (OSError, ValueError) as e:
        raise Problem(422, "Malformed Table", f"the Parquet file cannot be read: {e}") from e
    if rows != declared:
        raise Problem(
            422,
            "Malformed Table",
            f"the Parquet footer declares {declared:,} rows; it holds {rows:,}",
        )
    return schema, rows


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
    fmt, gzipped = _format(filename)
    raw.seek(0, os.SEEK_END)
    size = raw.tell()
    if size > max_bytes:
        raise Problem(
            413, "Upload Too Large", f"the file has {size:,} bytes; the limit is {max_bytes:,}"
        )
    with tempfile.TemporaryFile() if gzipped else contextlib.nullcontext(raw) as plain:
        if gzipped:
            _gunzip_into(raw, plain, max_bytes)
        plain.seek(0, os.SEEK_END)
        size = plain.tell()  # of the plaintext stored (its SHA-256 too)
        schema, rows = _sample_csv(plain) if fmt == "csv" else _sample_parquet(plain)
        relative, sha256 = store_encrypted(key, plain, data_dir, f".{fmt}")
    return StoredTable(relative, fmt, rows, size, sha256, schema)
