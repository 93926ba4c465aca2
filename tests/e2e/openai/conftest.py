"""Fixtures: clusters of real ``paddler`` CLI processes with the OpenAI-compatible API on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import AsyncOpenAI, OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openai_cluster import EMBEDDINGS, STOCHASTIC, OpenAICluster, serving


@pytest.fixture(scope="session")
def openai_cluster(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[OpenAICluster]:
    """One agent with two slots, SmolLM2 loaded with stochastic default sampling."""
    yield from serving(tmp_path_factory.mktemp("openai"), model_path, STOCHASTIC)


@pytest.fixture(scope="session")
def embeddings_cluster(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[OpenAICluster]:
    yield from serving(tmp_path_factory.mktemp("embed"), model_path, EMBEDDINGS)


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
