"""A typed Python client for the Sanitas API (owners, consumers, auditors)."""

from service.client.client import Client
from service.client.errors import (
    ApiError,
    BudgetExceeded,
    Conflict,
    Forbidden,
    Gone,
    InvalidRequest,
    NotFound,
    TruncatedDownload,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "ApiError",
    "BudgetExceeded",
    "Client",
    "Conflict",
    "Forbidden",
    "Gone",
    "InvalidRequest",
    "NotFound",
    "TruncatedDownload",
    "Unauthorized",
    "Unavailable",
]
