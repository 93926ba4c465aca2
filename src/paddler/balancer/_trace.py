"""Trace: ``<name>.started`` / ``.complete`` / ``.failed`` at DEBUG around one step (httpcore)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["Trace", "TraceCallback"]

TraceCallback = Callable[[str, dict[str, Any]], None]


class Trace:
    """``with Trace("dispatch", logger, request_id=...):`` logs the step and its duration.

    ``callback(event, info)`` (optional) receives the same events, e.g. for metrics.
    """

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        *,
        callback: TraceCallback | None = None,
        **info: Any,
    ) -> None:
        self.name = name
        self.logger = logger
        self.callback = callback
        self.info = info
        self._started = 0.0

    def _emit(self, event: str, **extra: Any) -> None:
        info = {**self.info, **extra}
        if self.logger.isEnabledFor(logging.DEBUG):
            details = " ".join(f"{key}={value!r}" for key, value in info.items())
            self.logger.debug("%s.%s %s", self.name, event, details)
        if self.callback is not None:
            self.callback(f"{self.name}.{event}", info)

    def __enter__(self) -> Trace:
        self._started = time.monotonic()
        self._emit("started")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = round(time.monotonic() - self._started, 6)
        if exc is None:
            self._emit("complete", seconds=elapsed)
        else:
            self._emit("failed", seconds=elapsed, error=type(exc).__name__)
