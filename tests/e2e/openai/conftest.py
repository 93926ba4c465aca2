"""Clusters of real ``paddler`` CLI processes with the OpenAI-compatible API switched on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

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


def _serving(tmp: Path, model_path: Path, parameters: dict[str, Any]) -> Iterator[OpenAICluster]:
    cluster = start_cluster(tmp, model_path, slots=2, parameters=parameters)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def openai_cluster(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[OpenAICluster]:
    """One agent with two slots, SmolLM2 loaded with stochastic default sampling."""
    yield from _serving(tmp_path_factory.mktemp("openai"), model_path, STOCHASTIC)


EMBEDDINGS = {"enable_embeddings": True, "pooling_type": "Mean", "context_size": 2048}


@pytest.fixture(scope="session")
def embeddings_cluster(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[OpenAICluster]:
    yield from _serving(tmp_path_factory.mktemp("embed"), model_path, EMBEDDINGS)


@pytest.fixture
def client(openai_cluster: OpenAICluster) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=openai_cluster.openai_url, api_key="unused", max_retries=0, timeout=120.0
    ) as sdk:
        yield sdk


@pytest.fixture
def async_client(openai_cluster: OpenAICluster) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=openai_cluster.openai_url, api_key="unused", max_retries=0, timeout=120.0
    )
