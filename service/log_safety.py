"""Log lines that a user's strings cannot forge.

Why: column names, category values, dataset and class names reach log messages (a
schema error names its column, a refused request its path). A name holding a newline
would write a line of its own that reads like any other record; one holding escape
sequences would drive the terminal of whoever tails the log. Every record is formatted
with its message's control characters escaped (``\\n`` becomes the two characters
backslash and n) and cut at ``MAX_MESSAGE``; a traceback keeps its lines, each one
indented, and its control characters escaped too.
"""

from __future__ import annotations

import logging
import re
from typing import IO, Any

__all__ = ["SafeFormatter", "configure_logging", "escape_controls"]

MAX_MESSAGE = 2_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def escape_controls(text: str) -> str:
    def escaped(match: re.Match[str]) -> str:
        return match.group().encode("unicode_escape").decode("ascii")

    return _CONTROL.sub(escaped, text)


class SafeFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        message = escape_controls(record.message)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + f"... ({len(message):,} characters)"
        record.message = message
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        lines = super().formatException(ei).split("\n")
        return "\n".join("    " + escape_controls(line) for line in lines)


# frameworks whose INFO lines are advertisements and hardware notes to a user of the CLI
# ("GPU available: False", a logging service tip); their warnings still show
CHATTY = ("pytorch_lightning", "lightning")


def _no_framework_chatter(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not record.name.startswith(CHATTY)


def configure_logging(level: int, stream: IO[str] | None = None) -> None:
    """The root logger writes one escaped line per record to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter(FORMAT))
    handler.addFilter(_no_framework_chatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
