"""``paddler agent`` draws its download progress bar on stderr when that is a terminal (the
library draws nothing; the CLI draws from the agent's status), and nothing when it is not.

``TTY_COMPATIBLE=1`` makes rich treat the agent's stderr (a log file here) as a terminal.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_cluster import Cluster, wait_until
from state_helpers import Route, only, start_agent, url_state

pytestmark = [pytest.mark.e2e]

MODEL = random.Random(3).randbytes(2 * 1024 * 1024)  # bytes only: it is never loaded here


@pytest.fixture
def cluster(tmp_path: Path, model_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, model_path)
    try:
        cluster.start_balancer()
        yield cluster
    finally:
        cluster.stop()


def download_shows(cluster: Cluster, name: str) -> None:
    """Wait until the agent ``name`` reports some bytes of its download."""
    cluster.wait_agents(
        lambda agents: (agent := only(agents, name)) is not None and agent["download_current"] > 0,
        60,
        "download progress in the agents snapshot",
    )


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "not-a-terminal"])
def test_paddler_agent_draws_the_download_bar_only_on_a_terminal(
    cluster: Cluster, file_server: Any, tmp_path: Path, terminal: bool
) -> None:
    hold = threading.Event()
    path = f"/models/bar-{terminal}/Tiny.gguf"
    url = file_server.add(path, Route(body=MODEL, stall_after=1024 * 1024, hold=hold))
    env = {"PADDLER_CACHE_DIR": str(tmp_path / "cache")}
    if terminal:
        env["TTY_COMPATIBLE"] = "1"
    agent = start_agent(cluster, "bar", 1, env=env)
    try:
        response = cluster.put_state(url_state(url))
        assert response.status_code == 204, response.text
        download_shows(cluster, "bar")
        # The bar's own text: the file name and "<done>/2.1 MB" (2 MiB), from rich's columns.
        if terminal:
            wait_until(
                lambda: "Tiny.gguf" in agent.log() and "/2.1 MB" in agent.log(),
                30,
                "the progress bar on the agent's stderr",
                agent,
            )
        else:  # the agent's status already said so: a bar would have been drawn by now
            assert "/2.1 MB" not in agent.log()
    finally:
        hold.set()
