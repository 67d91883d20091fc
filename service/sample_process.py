"""``python -m service.sample_process MODEL_DIR N``: stream synthetic rows to stdout.

A process of its own so that torch never loads in the API; the API relays its stdout.
Rows go out chunk by chunk, so a million rows need no more memory than one chunk.
CSV cells of text columns that start with = + - @ (or tab/CR) get a leading quote, so
a spreadsheet does not run them as formulas.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

import pandas as pd

CHUNK = 50_000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object or pd.api.types.is_string_dtype(out[name].dtype):
            values = out[name].astype("string")
            risky = values.str.startswith(FORMULA_START).fillna(False)
            out[name] = values.where(~risky, "'" + values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--format", choices=["csv", "jsonl", "parquet"], default="csv")
    parser.add_argument("--where", default="{}", help="JSON object column -> value")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    warnings.filterwarnings("ignore")

    import training
    from training.errors import TrainingError

    try:
        model = training.load(args.model_dir)
        chunks = model.sample_chunks(
            args.n, seed=args.seed, where=json.loads(args.where), chunk_size=CHUNK
        )
        out = sys.stdout.buffer
        writer = None
        for i, chunk in enumerate(chunks):
            if args.format == "csv":
                out.write(neutralize(chunk).to_csv(index=False, header=i == 0).encode())
            elif args.format == "jsonl":
                out.write(chunk.to_json(orient="records", lines=True, date_format="iso").encode())
                out.write(b"\n" if len(chunk) else b"")
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(out, table.schema)
                writer.write_table(table)
            out.flush()
        if writer is not None:
            writer.close()
    except TrainingError as e:
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
