"""The fuzz cluster: one real balancer (with the OpenAI API) and one real agent, shared by
both fuzz modules (started once per session, only when a fuzz test runs).

Every fuzz test leaves it as it found it: ``survivor`` checks after each test that the agent
is still registered under the same id with the same slots, and that both processes live.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_cluster import Cluster, free_port
from fuzz_settings import AGENT, CONTEXT, EXAMPLES, SLOTS


@pytest.fixture(scope="session")
def fuzz_examples() -> int:
    return EXAMPLES


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    running = Cluster(
        tmp_path_factory.mktemp("fuzz"), model_path, compat_openai_addr=f"127.0.0.1:{free_port()}"
    )
    try:
        running.start_balancer()
        running.load_model(context_size=CONTEXT)
        running.start_agent(AGENT, SLOTS)
        running.wait_ready(1, slots=SLOTS)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def agent(cluster: Cluster) -> dict[str, Any]:
    """The agent's registration as first seen; it must not change while fuzzing."""
    (registered,) = cluster.agents_snapshot()
    return dict(registered)


@pytest.fixture(autouse=True)
def survivor(cluster: Cluster, agent: dict[str, Any]) -> Iterator[None]:
    yield
    assert cluster.balancer is not None and cluster.balancer.alive, cluster.logs()
    assert cluster.agents[AGENT].alive, cluster.logs()
    agents = cluster.agents_snapshot()
    seen = [(a["id"], a["slots_total"]) for a in agents]
    assert seen == [(agent["id"], SLOTS)], f"agent registration changed: {agents}\n{cluster.logs()}"
    cluster.wait_idle()
