"""The core integration tests run on asyncio (the ws transport needs it)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"
