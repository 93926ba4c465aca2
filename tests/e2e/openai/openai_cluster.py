"""OpenAI-serving clusters of real ``paddler`` CLI processes.

A uniquely named module (not conftest) so that test modules import it unambiguously.
"""

from __future__ import annotations

import os
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


#: What importing llama.cpp does in an OpenAI cluster's balancer process: the balancer must
#: never load it (schemas become grammars in the agent's engine worker), so any import fails.
NO_LLAMA_MESSAGE = "llama_cpp was imported in the balancer process"


def without_llama(tmp: Path) -> dict[str, str]:
    """Environment for a process in which ``import llama_cpp`` raises: a ``llama_cpp``
    package that raises on import, first on ``PYTHONPATH``."""
    shadow = tmp / "no-llama" / "llama_cpp"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text(f"raise RuntimeError({NO_LLAMA_MESSAGE!r})\n")
    path = [str(shadow.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


class OpenAICluster(Cluster):
    """A ``Cluster`` whose balancer also serves ``--compat-openai-addr``, in a process where
    llama.cpp cannot be imported (see ``without_llama``); its agents have llama.cpp as usual."""

    def __init__(self, tmp: Path, model_path: Path, **flags: Any) -> None:
        self.openai_port = free_port()
        super().__init__(
            tmp, model_path, compat_openai_addr=f"127.0.0.1:{self.openai_port}", **flags
        )
        self.balancer_env = without_llama(tmp)

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
