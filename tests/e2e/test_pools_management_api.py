"""The model pools' management routes (``/api/v1/pools/...``) on a real balancer with real
agents in two pools (subprocesses): each pool's desired state, agents, buffer and streams,
and the errors for unknown and malformed pool names.

One cluster for the module: agent ``red`` in the ``default`` pool (the model loaded), agent
``blue-1`` in pool ``blue``, which starts with no desired state (so no model).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_cluster import Cluster, desired_state, ndjson

pytestmark = [pytest.mark.e2e, pytest.mark.model]

SSE_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("pools-api"), model_path)
    try:
        cluster.start_balancer()
        cluster.load_model()
        cluster.start_agent("red", slots=1)
        cluster.start_agent("blue-1", slots=1, pool="blue")
        cluster.wait_ready(1)
        wait_event(
            cluster,
            "/api/v1/pools/stream",
            lambda doc: [p["agents"] for p in doc["pools"]] == [1, 1],
            "both pools to have their agent",
        )
        yield cluster
    finally:
        cluster.stop()


def wait_event(cluster: Cluster, path: str, predicate: Callable[[Any], bool], what: str) -> Any:
    """Read the SSE stream at ``path`` until an event's JSON satisfies ``predicate``."""
    last: Any = None
    with cluster.http.stream(
        "GET", f"{cluster.management_url}{path}", timeout=httpx.Timeout(5.0, read=SSE_TIMEOUT)
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])
                if predicate(last):
                    return last
    raise AssertionError(f"stream {path} ended before {what}; last event: {last}")


def get(cluster: Cluster, path: str) -> httpx.Response:
    return cluster.http.get(f"{cluster.management_url}{path}")


def put_pool_state(cluster: Cluster, pool: str, state: Any) -> httpx.Response:
    url = f"{cluster.management_url}/api/v1/pools/{pool}/desired_state"
    if isinstance(state, bytes):
        return cluster.http.put(url, content=state, headers={"content-type": "application/json"})
    return cluster.http.put(url, json=state)


def names(agents_document: dict[str, Any]) -> list[str]:
    return sorted(agent["name"] for agent in agents_document["agents"])


def test_pools_list_each_pool_with_its_agents_and_model(cluster: Cluster) -> None:
    pools = get(cluster, "/api/v1/pools").json()["pools"]
    assert [p["name"] for p in pools] == ["default", "blue"]
    default, blue = pools
    assert default["desired_model"] == {"LocalToAgent": str(cluster.model_path)}
    assert default["agents"] == 1 and default["slots_total"] == 1 and default["serving"]
    assert blue["desired_model"] == "None" and blue["agents"] == 1
    assert blue["slots_total"] == 0 and not blue["serving"]
    assert set(default) == {
        "name",
        "agents",
        "slots_total",
        "slots_busy",
        "buffered_requests",
        "desired_model",
        "serving",
        "generation_enabled",
    }


def test_each_pool_lists_only_its_agents_and_paddler_route_lists_all(cluster: Cluster) -> None:
    assert names(get(cluster, "/api/v1/pools/default/agents").json()) == ["red"]
    assert names(get(cluster, "/api/v1/pools/blue/agents").json()) == ["blue-1"]
    assert names(get(cluster, "/api/v1/agents").json()) == ["blue-1", "red"]
    first = wait_event(cluster, "/api/v1/pools/blue/agents/stream", lambda _: True, "one event")
    assert names(first) == ["blue-1"]
    for pool in ("default", "blue"):
        assert get(cluster, f"/api/v1/pools/{pool}/buffered_requests").json() == {
            "buffered_requests_current": 0
        }
    buffered = wait_event(
        cluster, "/api/v1/pools/blue/buffered_requests/stream", lambda _: True, "one event"
    )
    assert buffered == {"buffered_requests_current": 0}


def test_setting_one_pools_state_loads_its_agents_only(cluster: Cluster) -> None:
    default_before = get(cluster, "/api/v1/balancer_desired_state").content
    blue_state = desired_state(cluster.model_path, context_size=1024)

    response = put_pool_state(cluster, "blue", blue_state)

    assert response.status_code == 204, response.text
    assert get(cluster, "/api/v1/pools/blue/desired_state").json() == blue_state
    assert get(cluster, "/api/v1/balancer_desired_state").content == default_before
    assert get(cluster, "/api/v1/pools/default/desired_state").content == default_before
    agents = wait_event(
        cluster,
        "/api/v1/pools/blue/agents/stream",
        lambda doc: [a["slots_total"] for a in doc["agents"]] == [1],
        "blue-1 to load pool blue's model",
    )
    assert agents["agents"][0]["model_path"] == str(cluster.model_path)
    pools = wait_event(
        cluster,
        "/api/v1/pools/stream",
        lambda doc: doc["pools"][1]["serving"],
        "pool blue to serve",
    )["pools"]
    assert pools[1]["desired_model"] == {"LocalToAgent": str(cluster.model_path)}
    applicable = get(cluster, "/api/v1/pools/blue/applicable_state").json()
    assert applicable["inference_parameters"]["context_size"] == 1024


def test_unknown_pool_answers_404_naming_it(cluster: Cluster) -> None:
    for suffix in (
        "desired_state",
        "applicable_state",
        "agents",
        "agents/stream",
        "buffered_requests",
        "buffered_requests/stream",
    ):
        response = get(cluster, f"/api/v1/pools/no-such-pool/{suffix}")
        assert response.status_code == 404, (suffix, response.text)
        assert "no-such-pool" in response.json()["error"]["description"], suffix
    assert [p["name"] for p in get(cluster, "/api/v1/pools").json()["pools"]] == [
        "default",
        "blue",
    ]


def test_malformed_pool_name_answers_400_naming_the_rule(cluster: Cluster) -> None:
    for name in ("-leading-dash", "has%20space", "x" * 129):
        for response in (
            get(cluster, f"/api/v1/pools/{name}/desired_state"),
            get(cluster, f"/api/v1/pools/{name}/agents"),
            put_pool_state(cluster, name, desired_state(None)),
        ):
            assert response.status_code == 400, (name, response.text)
            description = response.json()["error"]["description"]
            assert "A-Za-z0-9" in description, description
    assert len(get(cluster, "/api/v1/pools").json()["pools"]) == 2


def test_bad_state_for_a_pool_is_refused_and_creates_nothing(cluster: Cluster) -> None:
    bad = desired_state(None)
    bad["inference_parameters"]["context_size"] = "big"
    response = put_pool_state(cluster, "green", bad)
    assert response.status_code == 400
    assert "context_size" in response.json()["error"]["description"]
    assert put_pool_state(cluster, "green", b"").status_code == 400
    assert get(cluster, "/api/v1/pools/green/desired_state").status_code == 404


def test_setting_a_new_pools_state_creates_the_pool(cluster: Cluster) -> None:
    state = desired_state(None, context_size=512)
    assert put_pool_state(cluster, "green.v2:small", state).status_code == 204
    assert get(cluster, "/api/v1/pools/green.v2:small/desired_state").json() == state
    pools = {p["name"]: p for p in get(cluster, "/api/v1/pools").json()["pools"]}
    assert pools["green.v2:small"]["agents"] == 0
    assert not pools["green.v2:small"]["serving"]
    assert get(cluster, "/api/v1/pools/green.v2:small/agents").json() == {"agents": []}


def test_a_pool_without_agents_buffers_and_shows_it_on_its_routes(cluster: Cluster) -> None:
    """A request for a pool with no agents waits in that pool's buffer (until the buffer
    timeout): the pool's routes show it, the other pool's do not, Paddler's route sums them."""
    assert put_pool_state(cluster, "waiting", desired_state(None)).status_code == 204
    answers: list[httpx.Response] = []

    def request() -> None:
        response = cluster.http.post(
            f"{cluster.inference_url}/api/v1/continue_from_raw_prompt",
            json={"raw_prompt": "Hello", "max_tokens": 4},
            headers={"Paddler-Pool": "waiting"},
            timeout=60.0,
        )
        answers.append(response)

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    wait_event(
        cluster,
        "/api/v1/pools/waiting/buffered_requests/stream",
        lambda doc: doc["buffered_requests_current"] == 1,
        "the request to wait in pool waiting's buffer",
    )
    assert get(cluster, "/api/v1/pools/default/buffered_requests").json() == {
        "buffered_requests_current": 0
    }
    assert get(cluster, "/api/v1/buffered_requests").json() == {"buffered_requests_current": 1}
    pools = {p["name"]: p for p in get(cluster, "/api/v1/pools").json()["pools"]}
    assert pools["waiting"]["buffered_requests"] == 1
    assert pools["default"]["buffered_requests"] == 0
    thread.join(timeout=60.0)
    [answer] = answers  # ends after --buffered-request-timeout, as with no agents at all
    assert answer.status_code == 200
    assert ndjson(answer)[-1]["Error"]["error"]["code"] == 504, answer.text
    assert get(cluster, "/api/v1/pools/waiting/buffered_requests").json() == {
        "buffered_requests_current": 0
    }


def test_pool_state_survives_a_restart_with_a_file_store(tmp_path: Path, model_path: Path) -> None:
    store = (tmp_path / "state.json").as_uri()
    cluster = Cluster(tmp_path, model_path, state_database=store)
    try:
        cluster.start_balancer()
        state = desired_state(model_path, context_size=1536)
        assert put_pool_state(cluster, "blue", state).status_code == 204
        assert cluster.balancer is not None
        assert cluster.balancer.terminate() == 0
        cluster.start_balancer()
        assert get(cluster, "/api/v1/pools/blue/desired_state").json() == state
        assert "blue" in [p["name"] for p in get(cluster, "/api/v1/pools").json()["pools"]]
    finally:
        cluster.stop()
