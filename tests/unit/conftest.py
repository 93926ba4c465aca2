"""Library code must not assume asyncio: the tests of these directories run on trio too.

The other unit directories (engine, openai, server, wire) keep ``tests/conftest.py``'s
asyncio-only ``anyio_backend``: their code runs in the worker process or on the server's loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: Directories under ``tests/unit`` whose tests run once per backend.
BOTH_BACKENDS = frozenset({"agent", "balancer", "core", "sources"})

_HERE = Path(__file__).parent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``anyio_backend`` (which then shadows the asyncio-only fixture) by directory."""
    if "anyio_backend" not in metafunc.fixturenames:
        return
    if hasattr(metafunc.module, "anyio_backend"):
        return  # the module chose its backend (asyncio-only websockets, for one)
    try:
        directory = metafunc.definition.path.relative_to(_HERE).parts[0]
    except ValueError:
        return
    if directory in BOTH_BACKENDS:
        metafunc.parametrize("anyio_backend", ["asyncio", "trio"])
