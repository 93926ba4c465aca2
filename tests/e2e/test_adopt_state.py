"""A balancer restarted with ``memory://`` adopts the model its agents serve.

Before, the new balancer had only the default state (model ``"None"``) and told every agent
that reconnected to drop its model. Real CLI processes: a balancer, two agents with the demo
model loaded, the balancer restarted on the same ports.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_cluster import Cluster, conversation, is_done, ndjson

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def test_agents_keep_their_model_and_the_new_balancer_adopts_it(
    tmp_path: Path, model_path: Path
) -> None:
    cluster = Cluster(tmp_path, model_path)
    try:
        cluster.start_balancer()
        cluster.load_model()
        cluster.start_agent("one", 1)
        cluster.start_agent("two", 1)
        cluster.wait_ready(2)
        assert cluster.balancer is not None
        cluster.balancer.terminate()

        cluster.start_balancer()  # memory:// again: nothing stored
        agents = cluster.wait_agents(lambda a: len(a) == 2, 30.0, "both agents to reconnect")
        # They registered still serving, and were not told to unload.
        agents = cluster.wait_ready(2)
        assert {a["model_path"] for a in agents} == {str(model_path)}
        state = cluster.http.get(f"{cluster.management_url}/api/v1/balancer_desired_state").json()
        assert state["model"] == {"LocalToAgent": str(model_path)}
        applicable = cluster.http.get(
            f"{cluster.management_url}/api/v1/balancer_applicable_state"
        ).json()
        assert applicable["model"] == {"LocalToAgent": str(model_path)}
        assert "adopted the model the agents serve" in cluster.balancer.log()
        for name in ("one", "two"):  # one load each, before the restart; none after
            assert cluster.agents[name].log().count("registered with") == 2
        response = cluster.http.post(
            f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
            json=conversation(max_tokens=4),
        )
        assert is_done(ndjson(response)[-1])

        cluster.start_agent("late", 1)  # an agent that joins later loads the adopted model
        late = cluster.wait_agents(
            lambda a: any(x["name"] == "late" and x["slots_total"] == 1 for x in a),
            120.0,
            "the late agent to load the adopted model",
        )
        assert {a["model_path"] for a in late} == {str(model_path)}
    finally:
        cluster.stop()
