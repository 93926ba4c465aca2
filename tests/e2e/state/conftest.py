"""Fixtures of the desired-state e2e tests: ``tests/e2e`` on ``sys.path`` (for ``e2e_cluster``)
and a local HTTP file server standing in for a model host."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from state_helpers import FileServer


@pytest.fixture(scope="module")
def file_server() -> Iterator[Any]:
    """A real local HTTP server for model files (one per module)."""
    server = FileServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
