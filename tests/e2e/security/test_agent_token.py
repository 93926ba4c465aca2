"""Agent join tokens with real ``paddler balancer`` and ``paddler agent`` subprocesses.

No model is loaded: an agent registers (and shows in ``/api/v1/agents``) before it has one,
which is all the token decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets.sync.client
from secured_cluster import SecuredCluster, wait_for_log
from websockets.exceptions import InvalidStatus

pytestmark = pytest.mark.e2e

TOKEN_A = "machine-a-token"
TOKEN_B = "machine-b-token"


@pytest.fixture
def cluster(tmp_path: Path, model_path: Path) -> Iterator[SecuredCluster]:
    cluster = SecuredCluster(tmp_path, model_path)
    try:
        # debug: refusals after an agent's first are debug lines (one warning a minute per id)
        cluster.start_balancer(
            "--agent-token", TOKEN_A, "--agent-token", TOKEN_B, "--log-level", "debug"
        )
        yield cluster
    finally:
        cluster.stop()


def test_an_agent_without_the_token_is_refused_and_keeps_retrying(
    cluster: SecuredCluster,
) -> None:
    """Both sides say why; the agent retries (refused again) and never registers."""
    agent = cluster.start_agent_with("no-token")
    wrong = cluster.start_agent_with("wrong-token", "--token", "guess")
    agent_log = wait_for_log(agent, "needs an agent token (paddler agent --token)")
    assert "refused this agent: HTTP 401" in agent_log
    assert "refused this agent: HTTP 403" in wait_for_log(wrong, "not one this balancer accepts")
    assert cluster.balancer is not None
    # Retrying as usual: the balancer refuses the same agents again on their next attempts.
    balancer_log = wait_for_log(cluster.balancer, "agent refused", count=4)
    assert "reason=this balancer needs an agent token" in balancer_log
    assert "reason=the agent token is not one this balancer accepts" in balancer_log
    assert agent.alive and wrong.alive
    assert cluster.agents_snapshot() == []


def test_agents_with_an_accepted_token_register(
    cluster: SecuredCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--token and PADDLER_AGENT_TOKEN both work, with any of the balancer's tokens."""
    cluster.start_agent_with("flag", "--token", TOKEN_A)
    monkeypatch.setenv("PADDLER_AGENT_TOKEN", TOKEN_B)
    cluster.start_agent_with("env")
    agents = cluster.wait_agents(lambda agents: len(agents) == 2, 30.0, "two agents")
    assert sorted(agent["name"] for agent in agents) == ["env", "flag"]


def test_an_agent_id_is_reclaimed_only_with_its_own_token(cluster: SecuredCluster) -> None:
    """Another accepted token cannot take over a registered agent's (public) id."""
    cluster.start_agent_with("real", "--token", TOKEN_A)
    (real,) = cluster.wait_agents(lambda agents: len(agents) == 1, 30.0, "the real agent")
    url = f"ws://127.0.0.1:{cluster.management_port}/api/v1/agent_socket/{real['id']}"
    for headers, status, reason in (
        ({"Authorization": f"Bearer {TOKEN_B}"}, 403, "belongs to an agent with another token"),
        ({}, 401, "needs an agent token"),
    ):
        with pytest.raises(InvalidStatus) as refused:
            websockets.sync.client.connect(url, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == status
        assert reason in refused.value.response.body.decode()
    assert [agent["id"] for agent in cluster.agents_snapshot()] == [real["id"]]
