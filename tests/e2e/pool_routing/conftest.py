"""The session's pool-routing cluster (see ``pool_routing_cluster``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pool_routing_cluster import OpenAICluster, pools_cluster


@pytest.fixture(scope="session", name="pools_cluster")
def pools_cluster_fixture(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[OpenAICluster]:
    yield from pools_cluster(tmp_path_factory.mktemp("pool-routing"), model_path)
