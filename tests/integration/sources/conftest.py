"""Fixtures of the model-source tests: a local file server, a cache dir, a model's bytes."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._fileserver import FileServer


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def model_bytes() -> bytes:
    """A fake 'model' of 1 MiB of random bytes (so a misplaced byte shows)."""
    return random.Random(7).randbytes(1024 * 1024)


@pytest.fixture
def free_port() -> int:
    """A port on which nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
