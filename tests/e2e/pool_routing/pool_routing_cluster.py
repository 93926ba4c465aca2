"""The cluster every pool-routing test shares: a real ``paddler balancer`` and two real agents,
each in its own pool, with API keys and a model alias.

- pool ``chat``: agent ``agent-chat``, the demo model generating (deterministic sampling);
- pool ``embed``: agent ``agent-embed``, the same model in embeddings mode, so a request that
  reaches the wrong pool fails in a way a test can see (501), besides ``generated_by``;
- ``--model-alias fast=chat``;
- keys: ``ALL_KEY`` (no ``models``: every pool) and ``CHAT_KEY`` (``models = ["fast"]``: the
  alias, so only ``chat``);
- the ``default`` pool has no agent and no desired state.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "openai"))

from e2e_cluster import desired_state
from openai_cluster import EMBEDDINGS, OpenAICluster

__all__ = ["ALL_KEY", "CHAT_KEY", "OpenAICluster", "pools_cluster"]

ALL_KEY = "pool-routing-all-key"
CHAT_KEY = "pool-routing-chat-key"

KEYS_FILE = f"""
[[keys]]
name = "everything"
key = "{ALL_KEY}"

[[keys]]
name = "chat-only"
key = "{CHAT_KEY}"
models = ["fast"]
"""


def pools_cluster(tmp: Path, model_path: Path) -> Iterator[OpenAICluster]:
    keys = tmp / "keys.toml"
    keys.write_text(KEYS_FILE)
    cluster = OpenAICluster(tmp, model_path, model_alias="fast=chat", api_keys_file=keys)
    try:
        cluster.start_balancer()
        for pool, parameters in (("chat", {}), ("embed", EMBEDDINGS)):
            response = cluster.http.put(
                f"{cluster.management_url}/api/v1/pools/{pool}/desired_state",
                json=desired_state(model_path, **parameters),
            )
            assert response.status_code == 204, response.text
            cluster.start_agent(f"agent-{pool}", 1, pool=pool)
        cluster.wait_ready(2)
        yield cluster
    finally:
        cluster.stop()
