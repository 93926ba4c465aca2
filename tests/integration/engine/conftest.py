"""Engine tests share a few loaded engines per module (the model loads in well under a second)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"
