"""Formula injection in the consumer's CSV (issue 19, B2): the header row and every text
cell that a spreadsheet would run as a formula get a leading quote, whatever the
column's dtype and however many blanks come first; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pandas as pd

from service.sampling.sample_process import csv_bytes, neutralize

FORMULAS = ("=", "+", "-", "@")


def _runs_as_formula(cell: str) -> bool:
    return cell.lstrip().startswith(FORMULAS) or cell.startswith(("\t", "\r"))


def test_no_header_or_cell_of_a_real_table_runs_as_a_formula(cps):
    frame = cps.drop(columns=["rownames"]).head(2_000).copy()
    hostile = {"region": '=HYPERLINK("http://127.0.0.1/x","y")', "ethnicity": "  @SUM(A1)"}
    frame = frame.rename(columns=hostile)
    frame[hostile["region"]] = frame[hostile["region"]].astype(str).replace("south", " =1+2")
    frame[hostile["ethnicity"]] = (
        frame[hostile["ethnicity"]].astype(str).replace("afam", "\t-3").astype("category")
    )
    frame["smsa"] = frame["smsa"].astype(str).replace("yes", "+cmd|' /C calc'!A0").astype("string")
    rows = list(csv.reader(io.StringIO(csv_bytes(neutralize(frame), header=True).decode())))
    header, body = rows[0], rows[1:]
    assert not [c for c in header if _runs_as_formula(c)], header
    assert header[list(frame.columns).index(hostile["region"])].startswith("'=HYPERLINK")
    text = [i for i, c in enumerate(frame.columns) if not pd.api.types.is_numeric_dtype(frame[c])]
    assert not [row[i] for row in body for i in text if _runs_as_formula(row[i])]
    assert (
        sum(row[text[0]] == "' =1+2" for row in body)
        == (cps["region"].head(2_000) == "south").sum()
    )
    # numbers are left as numbers, negative ones included (no quote before a minus)
    experience = header.index("experience")
    assert [int(row[experience]) for row in body] == frame["experience"].tolist()


def test_a_safe_frame_is_returned_as_it_is(cps):
    frame = cps.drop(columns=["rownames"]).head(100)
    assert neutralize(frame) is frame
