"""A real CLI cluster (balancer + one agent with two slots) for the ``paddler.client`` tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))

from e2e_cluster import Cluster, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("client"), model_path, agents=[("client-agent", 2)]
    ) as running:
        yield running
