"""OpenAI-serving clusters of real ``paddler`` CLI processes.

A uniquely named module (not conftest) so that test modules import it unambiguously.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e_cluster import Cluster, free_port

#: Sampling that is *not* deterministic, so that per-request overrides visibly matter.
STOCHASTIC = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.05,
    "context_size": 4096,
}


class OpenAICluster(Cluster):
    """A ``Cluster`` whose balancer also serves ``--compat-openai-addr``."""

    def __init__(self, tmp: Path, model_path: Path, **flags: Any) -> None:
        self.openai_port = free_port()
        super().__init__(
            tmp, model_path, compat_openai_addr=f"127.0.0.1:{self.openai_port}", **flags
        )

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.openai_port}/v1"


def start_cluster(
    tmp: Path,
    model_path: Path,
    *,
    slots: int,
    agents: int = 1,
    parameters: dict[str, Any] | None = None,
    **flags: Any,
) -> OpenAICluster:
    cluster = OpenAICluster(tmp, model_path, **flags)
    try:
        cluster.start_balancer()
        if parameters is not None:
            cluster.load_model(**parameters)
        for i in range(agents):
            cluster.start_agent(f"agent-{i}", slots)
        if parameters is not None:
            cluster.wait_ready(agents)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def serving(tmp: Path, model_path: Path, parameters: dict[str, Any]) -> Iterator[OpenAICluster]:
    cluster = start_cluster(tmp, model_path, slots=2, parameters=parameters)
    try:
        yield cluster
    finally:
        cluster.stop()


EMBEDDINGS = {"enable_embeddings": True, "pooling_type": "Mean", "context_size": 2048}
