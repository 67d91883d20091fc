"""Named errors of the training package.

Every error a caller can act on has its own class, so that the service can map it to
an HTTP problem without parsing messages. Messages carry ``name=value`` and the
expected range.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ConditionError",
    "ConstraintError",
    "DuplicateColumnError",
    "EmptyTableError",
    "PrivacyConfigError",
    "SchemaError",
    "SchemaMismatchError",
    "TooFewRowsError",
    "TrainingError",
    "UnsupportedDtypeError",
]


class TrainingError(Exception):
    """Base class of every error raised by ``training``."""


class SchemaError(TrainingError):
    """The table or its schema cannot be used as given."""


class EmptyTableError(SchemaError):
    """The table has no rows or no columns."""


class TooFewRowsError(SchemaError):
    """The table has fewer rows than DP training can use."""


class DuplicateColumnError(SchemaError):
    """Two columns share a name."""


class UnsupportedDtypeError(SchemaError):
    """A column's dtype has no encoder."""


class SchemaMismatchError(SchemaError):
    """The data does not match the schema it is used with."""


class PrivacyConfigError(TrainingError):
    """The privacy settings cannot give the promised guarantee."""


class ConditionError(TrainingError):
    """A ``where=`` condition names an unknown column or a value outside its domain."""


class ConstraintError(ConditionError):
    """Too few drawn rows keep the schema's declared constraints (with ``where=``, or a
    model far from the rule) to fill the request."""


class ArtifactError(TrainingError):
    """An artifact directory is missing, corrupted, truncated or not ours."""
