"""A hostile column name cannot forge a log line (issue 19, B1: logs are a context too):
the schema error that names it is logged as one escaped line."""

from __future__ import annotations

import io
import logging

import pytest

import training
from service.log_safety import SafeFormatter, configure_logging
from training.errors import SchemaError


def test_a_column_name_with_newlines_stays_on_its_log_line(cps):
    """Preprocessing warns with the column's name when DP selection keeps none of its
    categories; the name is the uploader's and tries to write a line of its own."""
    import numpy as np

    from training.preprocessing import fit_encoders

    forged = "region\nCRITICAL root: all keys revoked\x1b[2J"
    # a sample across regions (the first 500 rows are all one region: a constant column,
    # which inference now excludes before preprocessing could warn about it)
    frame = cps.drop(columns=["rownames"]).sample(500, random_state=0)
    frame = frame.rename(columns={"region": forged})
    schema = training.infer_schema(frame)
    stream = io.StringIO()
    configure_logging(logging.INFO, stream)
    fit_encoders(frame, schema, sigma=1_000.0, delta_selection=1e-6, max_bins=32,
                 rng=np.random.default_rng(0))  # fmt: skip
    try:
        raise SchemaError(f"column={forged} is unusable")
    except SchemaError:
        logging.getLogger("sanitas.test").exception("with its traceback")
    text = stream.getvalue()
    lines = text.splitlines()
    records = [line for line in lines if not line.startswith("    ")]
    assert any("region\\nCRITICAL root" in line and "no category" in line for line in records)
    assert "\x1b" not in text and not [line for line in lines if line.startswith("CRITICAL")]


def test_a_long_message_is_cut():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("a" * 10_000,), None)
    assert len(SafeFormatter("%(message)s").format(record)) < 2_100


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
