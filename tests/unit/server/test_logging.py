"""``--log-level``: third-party libraries stay quiet unless asked for with ``trace``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from paddler_server._logging import THIRD_PARTY_LOGGERS, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in THIRD_PARTY_LOGGERS}
    yield
    root.handlers[:], root.level = handlers, level
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_debug_is_ours_only_and_keeps_ping_frames_out() -> None:
    """At debug, paddler logs debug; websockets' per-frame debug lines are not emitted."""
    configure_logging("debug")
    assert logging.getLogger("paddler.balancer").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("websockets.server").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)


def test_trace_lets_every_library_speak() -> None:
    configure_logging("trace")
    assert logging.getLogger("websockets.server").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("paddler.agent").isEnabledFor(logging.DEBUG)


def test_info_keeps_libraries_at_warning() -> None:
    configure_logging("info")
    assert not logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)
    assert logging.getLogger("paddler").isEnabledFor(logging.INFO)
