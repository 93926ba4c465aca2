"""Quiet, structured log lines: ``time level logger message key=value ...``.

One line per record, easy to grep and to feed to a log shipper. Records may carry extra
fields through ``extra={"fields": {...}}``; they are appended as ``key=value``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["KeyValueFormatter", "configure_logging", "reapply_logging"]

LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical")
#: Libraries whose debug output floods a log (uvicorn and websockets log every ping frame).
THIRD_PARTY_LOGGERS = ("uvicorn", "uvicorn.error", "litestar", "websockets", "httpx", "httpcore")
_configured_level: str | None = None


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    """Formats a record as ``ts=... level=... logger=... msg=... key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={created}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(level: str) -> None:
    """Send every record at ``level`` or above to stderr, one key=value line each.

    Our own loggers (``paddler``, ``paddler_server``) follow ``level``; the libraries
    underneath (uvicorn, litestar, websockets, httpx) speak up at warning or above, at info
    when ``level`` is debug, and at debug (every WebSocket ping frame) only with ``trace``.
    """
    global _configured_level
    _configured_level = level
    everything = level.lower() == "trace"
    numeric = logging.DEBUG if everything else logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    if everything:
        library_level = logging.DEBUG
    elif numeric <= logging.DEBUG:
        library_level = logging.INFO
    else:
        library_level = max(numeric, logging.WARNING)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)


def reapply_logging() -> None:
    """Configure again after something else (a Litestar app's default config) changed it."""
    if _configured_level is not None:
        configure_logging(_configured_level)
