"""examples/inproc_cluster.py runs as a program and prints a completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

EXAMPLE = Path(__file__).parents[3] / "examples" / "inproc_cluster.py"


def test_inproc_cluster_example_prints_a_completion() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=True
    )
    completion, statistics = result.stdout.strip().rsplit("\n", 1)
    assert len(completion.split()) >= 5
    assert "requests_completed=1" in statistics
