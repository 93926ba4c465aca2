"""Things going wrong on purpose: a killed agent, a balancer stopped and restarted, scale from zero.

The module's tests run in order on one cluster (balancer with a file state database, agents
``steady`` and ``victim``): kill ``victim``, then SIGTERM the balancer mid-stream and start it
again, and ``steady`` must come back by itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from e2e_cluster import Cluster, conversation, is_done, ndjson, running_cluster
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.e2e, pytest.mark.model]

STEADY_ID: dict[str, str] = {}
NEVER_ENDING = {"type": "gbnf", "grammar": 'root ::= "ab" root', "root": "root"}


def holder_body() -> dict[str, Any]:
    return {"raw_prompt": "Go:", "max_tokens": 100000, "grammar": NEVER_ENDING}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("failures")
    with running_cluster(
        tmp,
        model_path,
        agents=[("steady", 1), ("victim", 1)],
        state_database=f"file://{tmp / 'state.json'}",
    ) as cluster:
        yield cluster


class Streamer(threading.Thread):
    """Reads one NDJSON response line by line in the background."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.lines: list[dict[str, Any]] = []
        self.first = threading.Event()

    def run(self) -> None:
        with httpx.stream("POST", self.url, json=self.body, timeout=60.0) as response:
            for line in response.iter_lines():
                if line.strip():
                    self.lines.append(json.loads(line))
                    self.first.set()
        self.first.set()


def start_streamer(cluster: Cluster) -> Streamer:
    streamer = Streamer(f"{cluster.inference_url}/api/v1/continue_from_raw_prompt", holder_body())
    streamer.start()
    assert streamer.first.wait(60), cluster.logs()
    return streamer


def test_killed_agent_fails_its_stream_and_leaves_the_pool(cluster: Cluster) -> None:
    """SIGKILL an agent mid-stream: its client gets Error 502, and the agent list drops it."""
    first, second = start_streamer(cluster), start_streamer(cluster)
    by_agent = {s.lines[0]["Response"]["generated_by"]: s for s in (first, second)}
    assert set(by_agent) == {"steady", "victim"}
    cluster.agents["victim"].kill()
    by_agent["victim"].join(30)
    assert by_agent["victim"].lines[-1]["Error"]["error"]["code"] == 502
    agents = cluster.wait_agents(
        lambda agents: [a["name"] for a in agents] == ["steady"], 15, "the killed agent to leave"
    )
    assert by_agent["steady"].is_alive(), "the other agent's stream must be unaffected"
    STEADY_ID["id"] = agents[0]["id"]  # the next tests keep this stream and check the id


@pytest.mark.anyio
async def test_sigterm_answers_in_flight_with_503_and_closes_sockets_going_away(
    cluster: Cluster,
) -> None:
    """SIGTERM: streams end with Error 503, WebSockets close 1001, the process exits cleanly
    (status 0, before its own shutdown deadline)."""
    if cluster.agents_snapshot()[0]["slots_processing"] == 0:
        start_streamer(cluster)
    async with connect(cluster.inference_socket_url) as socket:
        params = {"ContinueFromConversationHistory": conversation()}
        await socket.send(json.dumps({"Request": {"id": "buffered", "request": params}}))
        assert cluster.balancer is not None
        streaming = [t for t in threading.enumerate() if isinstance(t, Streamer) and t.is_alive()]
        assert await anyio.to_thread.run_sync(cluster.balancer.shut_down_cleanly)
        messages = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                messages.append(json.loads(await socket.recv()))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert messages[-1]["Error"] == {
            "request_id": "buffered",
            "error": {"code": 503, "description": "Balancer is shutting down"},
        }
    for streamer in streaming:
        streamer.join(10)
        assert streamer.lines[-1]["Error"]["error"]["code"] == 503


def test_agent_reregisters_after_balancer_restart(cluster: Cluster) -> None:
    """The same agent process (same id) registers again and serves once the balancer is back."""
    assert cluster.balancer is not None and not cluster.balancer.alive
    cluster.start_balancer()
    agents = cluster.wait_ready(1)
    assert [a["name"] for a in agents] == ["steady"]
    if "id" in STEADY_ID:
        assert agents[0]["id"] == STEADY_ID["id"]
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation(max_tokens=4),
    )
    assert is_done(ndjson(response)[-1])


def test_agent_sigterm_deregisters_and_exits(cluster: Cluster) -> None:
    """SIGTERM on an agent: it deregisters (gone from the list) and exits cleanly by itself."""
    assert cluster.agents["steady"].shut_down_cleanly()
    cluster.wait_agents(lambda agents: agents == [], 10, "the stopped agent to leave")


def test_scale_from_zero(tmp_path: Path, model_path: Path) -> None:
    """A request that arrives with no agent waits, and is served when the first agent joins."""
    cluster = Cluster(tmp_path, model_path, buffered_request_timeout=60000)
    try:
        cluster.start_balancer()
        cluster.load_model()
        result: dict[str, httpx.Response] = {}

        def post() -> None:
            result["response"] = httpx.post(
                f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
                json=conversation(max_tokens=4),
                timeout=90.0,
            )

        waiting = threading.Thread(target=post)
        waiting.start()
        wait_buffered_one(cluster)
        cluster.start_agent("late", 1)
        waiting.join(90)
        lines = ndjson(result["response"])
        assert is_done(lines[-1]), cluster.logs()
        assert lines[0]["Response"]["generated_by"] == "late"
    finally:
        cluster.stop()


def wait_buffered_one(cluster: Cluster) -> None:
    with cluster.http.stream(
        "GET",
        f"{cluster.management_url}/api/v1/buffered_requests/stream",
        timeout=httpx.Timeout(5.0, read=30.0),
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and json.loads(line[5:])["buffered_requests_current"] == 1:
                return
    raise AssertionError("the request was never buffered")


def test_inference_item_timeout_is_504(tmp_path: Path, model_path: Path) -> None:
    """No next token within --inference-item-timeout: the stream ends with Error 504."""
    with running_cluster(
        tmp_path, model_path, agents=[("slow", 1)], inference_item_timeout=0
    ) as cluster:
        response = cluster.http.post(
            f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
            json=conversation(max_tokens=8),
        )
        lines = ndjson(response)
        assert lines[-1]["Error"]["error"]["code"] == 504
        assert "inference-item-timeout" in lines[-1]["Error"]["error"]["description"]
        cluster.wait_idle()
