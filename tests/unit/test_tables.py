"""What a job and `sanitas train` read: delimited text whatever its delimiter."""

import pandas as pd
import pytest

from service.storage.tables import read_table, sniff_delimiter


@pytest.mark.parametrize(("sep", "suffix"), [(";", ".csv"), ("\t", ".tsv"), ("|", ".csv")])
def test_a_table_reads_the_same_whatever_its_delimiter(cps, tmp_path, sep, suffix):
    rows = cps.head(2_000)
    comma, other = tmp_path / "comma.csv", tmp_path / f"other{suffix}"
    rows.to_csv(comma, index=False)
    rows.to_csv(other, index=False, sep=sep)
    pd.testing.assert_frame_equal(read_table(other), read_table(comma))
    assert len(read_table(comma).columns) == len(rows.columns)


def test_a_comma_wins_a_tie_and_a_single_column_is_read_as_one():
    assert sniff_delimiter(b"a;b,c\n1;2,3\n") == ","
    assert sniff_delimiter(b"wage\n1\n") == ","
