"""Reading and writing tables by file extension (CSV, Parquet, or JSON Lines)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["UnsupportedFormatError", "read_table", "sniff_delimiter", "write_table"]

DELIMITERS = (",", ";", "\t", "|")


class UnsupportedFormatError(ValueError):
    """The file extension names no table format we read or write."""


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".parquet", ".jsonl"):
        raise UnsupportedFormatError(f"file={path.name!r}: expected .csv, .tsv, .parquet or .jsonl")
    return ".csv" if suffix == ".tsv" else suffix


def sniff_delimiter(head: bytes) -> str:
    """The delimiter of a delimited text table: whichever of , ; tab | its header line
    holds most of (a comma on a tie, or when it holds none). A semicolon CSV, what
    spreadsheets write where the comma is the decimal mark, read as one column of text."""
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 0 else ","


def read_table(path: Path) -> pd.DataFrame:
    suffix = _suffix(path)
    if suffix == ".csv":
        with path.open("rb") as f:
            head = f.read(64 * 1024)
        return pd.read_csv(path, sep=sniff_delimiter(head.removeprefix(b"\xef\xbb\xbf")))
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path)


def write_table(path: Path, chunks: Iterable[pd.DataFrame]) -> int:
    """Write chunks as they come (bounded memory); returns the number of rows."""
    suffix = _suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for i, chunk in enumerate(chunks):
            rows += len(chunk)
            if suffix == ".csv":
                chunk.to_csv(path, mode="w" if i == 0 else "a", header=i == 0, index=False)
                continue
            if suffix == ".jsonl":
                with path.open("w" if i == 0 else "a") as f:
                    chunk.to_json(f, orient="records", lines=True, date_format="iso")
                continue
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return rows


def parse_scalar(raw: str) -> Any:
    """A condition's value as typed on a command line or in a query (``where=``): an
    int, else a float, else true/false, else the text itself."""
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(raw.lower(), raw)
