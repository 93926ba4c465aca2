"""Dispatch across four one-slot agents: spreading, buffering limits, session affinity.

"Holders" are requests that cannot end on their own (a grammar with no accepting state) and
keep a slot busy until the test lets go of them by closing their socket.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from e2e_cluster import Cluster, conversation, ndjson, running_cluster
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.model]

AGENTS = [("a1", 1), ("a2", 1), ("a3", 1), ("a4", 1)]
NEVER_ENDING = {"type": "gbnf", "grammar": 'root ::= "ab" root', "root": "root"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("dispatch"),
        model_path,
        agents=AGENTS,
        max_buffered_requests=1,
        buffered_request_timeout=2000,
    ) as cluster:
        yield cluster


def holder(request_id: str) -> str:
    params = {"raw_prompt": "Go:", "max_tokens": 100000, "grammar": NEVER_ENDING}
    return json.dumps({"Request": {"id": request_id, "request": {"ContinueFromRawPrompt": params}}})


@asynccontextmanager
async def holding(cluster: Cluster, count: int) -> AsyncIterator[list[str]]:
    """Occupy ``count`` slots; yields the agents that took them; frees them on exit."""
    async with connect(cluster.inference_socket_url) as socket:
        for index in range(count):
            await socket.send(holder(f"hold-{index}"))
        agents: dict[str, str] = {}
        with anyio.fail_after(60):
            while len(agents) < count:
                message = json.loads(await socket.recv())
                response = message.get("Response")
                assert response is not None, message
                agents[response["request_id"]] = response["generated_by"]
        yield list(agents.values())
    cluster.wait_idle()


def wait_buffered(cluster: Cluster, count: int) -> None:
    with cluster.http.stream(
        "GET",
        f"{cluster.management_url}/api/v1/buffered_requests/stream",
        timeout=httpx.Timeout(5.0, read=30.0),
    ) as response:
        for line in response.iter_lines():
            if (
                line.startswith("data:")
                and json.loads(line[5:])["buffered_requests_current"] == count
            ):
                return
    raise AssertionError(f"never saw {count} buffered requests")


@pytest.mark.anyio
async def test_burst_lands_on_four_distinct_agents(cluster: Cluster) -> None:
    """Four concurrent requests on four one-slot agents use every agent once."""
    async with holding(cluster, 4) as agents:
        assert sorted(agents) == ["a1", "a2", "a3", "a4"]
        assert all(a["slots_processing"] == 1 for a in cluster.agents_snapshot())


@pytest.mark.anyio
async def test_overflow_is_503_and_buffer_timeout_is_504(cluster: Cluster) -> None:
    """With every slot busy: one request waits (then 504), the next overflows (503)."""
    async with holding(cluster, 4):
        results: dict[str, list[dict[str, Any]]] = {}

        def post(name: str) -> None:
            response = httpx.post(
                f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
                json=conversation(),
                timeout=30.0,
            )
            results[name] = ndjson(response)

        waiting = threading.Thread(target=post, args=("waiting",))
        waiting.start()
        wait_buffered(cluster, 1)
        post("overflow")
        overflow = results["overflow"]
        assert overflow[-1]["Error"]["error"]["code"] == 503
        await anyio.to_thread.run_sync(waiting.join)
        timed_out = results["waiting"]
        assert timed_out[-1]["Error"]["error"]["code"] == 504
        assert len(timed_out) == 1 and len(overflow) == 1
    assert cluster.http.get(f"{cluster.management_url}/api/v1/buffered_requests").json() == {
        "buffered_requests_current": 0
    }


def short_request(cluster: Cluster, session: str | None) -> str:
    headers = {} if session is None else {"X-Paddler-Session": session}
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation(max_tokens=2),
        headers=headers,
    )
    generated_by = {line["Response"]["generated_by"] for line in ndjson(response)}
    assert len(generated_by) == 1, generated_by
    return str(generated_by.pop())


@pytest.mark.anyio
async def test_session_affinity_plugin_keeps_a_session_on_its_agent(cluster: Cluster) -> None:
    """With the plugin installed, a session sticks to the agent it first landed on."""
    names = {ep.name for ep in entry_points(group="paddler")}
    assert "session_affinity" in names, "bootstrap installs the plugin"
    async with holding(cluster, 1) as (busy,):
        home = short_request(cluster, "conversation-1")
        assert home != busy
    # Every agent is idle again: least busy alone would pick the first agent (``busy``).
    assert short_request(cluster, None) == busy
    for _ in range(3):
        assert short_request(cluster, "conversation-1") == home
