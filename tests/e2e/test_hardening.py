"""Bad input hurts nobody else (issue 10): a real balancer with small limits and one real agent.

Every bad input gets a 4xx (or close code) that names what was wrong; afterwards the desired
state is unchanged, an ordinary request still completes and the agent never disconnected. A
watcher reads the agents SSE stream for the whole module and records every snapshot, so a
disconnect-and-reconnect between two tests is seen too.
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
from e2e_cluster import (
    Cluster,
    conversation,
    desired_state,
    free_port,
    is_done,
    ndjson,
    running_cluster,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.e2e, pytest.mark.model]

LIMITS = {
    "max_body_bytes": 65536,
    "max_frame_bytes": 65536,
    "max_in_flight_per_socket": 2,
    "max_json_depth": 32,
    "max_request_id_length": 64,
    "max_connections": 12,
}
RECEIVE_TIMEOUT = 120.0
STATE_URL = "/api/v1/balancer_desired_state"


class AgentWatcher(threading.Thread):
    """Records the agent count of every agents snapshot until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.counts: list[int] = []
        self.stopped = threading.Event()
        self.seen = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                with httpx.stream("GET", self.url, timeout=httpx.Timeout(5.0, read=None)) as r:
                    for line in r.iter_lines():
                        if self.stopped.is_set():
                            return
                        if line.startswith("data:"):
                            self.counts.append(len(json.loads(line[5:])["agents"]))
                            self.seen.set()
            except httpx.HTTPError:
                if not self.stopped.is_set():
                    self.counts.append(-1)  # the stream itself broke: counted as a problem


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("hardening"),
        model_path,
        agents=[("solo", 2)],
        compat_openai_addr=f"127.0.0.1:{free_port()}",
        **LIMITS,
    ) as cluster:
        watcher = AgentWatcher(f"{cluster.management_url}/api/v1/agents/stream")
        watcher.start()
        assert watcher.seen.wait(10.0)
        cluster.watcher = watcher  # type: ignore[attr-defined]
        yield cluster
        watcher.stopped.set()


def assert_nobody_hurt(cluster: Cluster, state_before: Any = None) -> None:
    """The state is what it was, an ordinary request completes, the agent never left."""
    if state_before is not None:
        response = cluster.http.get(cluster.management_url + STATE_URL)
        assert response.status_code == 200, response.text
        assert response.json() == state_before
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation("Say hi.", max_tokens=4),
    )
    assert response.status_code == 200, response.text
    assert is_done(ndjson(response)[-1]), response.text
    watcher: AgentWatcher = cluster.watcher  # type: ignore[attr-defined]
    assert watcher.counts and min(watcher.counts) == 1, f"agent left: {watcher.counts}"
    assert cluster.balancer is not None and cluster.balancer.alive
    assert all(agent.alive for agent in cluster.agents.values())


def state_with(cluster: Cluster, **parameters: Any) -> str:
    """A desired-state document as text (so values like NaN can be spliced in)."""
    return json.dumps(desired_state(cluster.model_path, **parameters))


# -- point 1: non-finite numbers and ranges ------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "field"),
    [
        ("1e39", "temperature"),  # finite double, but inf as an f32
        ("NaN", "temperature"),
        ("1e999", "top_p"),
        ("-Infinity", "min_p"),
        ("-1", "context_size"),
        ("0", "n_batch"),
        ("1.5", "top_p"),
        ("99999999999999999999", "n_gpu_layers"),
    ],
)
def test_bad_number_in_desired_state_is_400_and_changes_nothing(
    cluster: Cluster, literal: str, field: str
) -> None:
    """The PUT is refused naming the field; GET still answers the old state; agents stay."""
    before = cluster.http.get(cluster.management_url + STATE_URL).json()
    marker = 123456
    body = state_with(cluster, **{field: marker}).replace(str(marker), literal)
    response = cluster.http.put(
        cluster.management_url + STATE_URL,
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert f"inference_parameters.{field}" in error["description"]
    assert_nobody_hurt(cluster, before)


def test_negative_rms_norm_epsilon_is_400(cluster: Cluster) -> None:
    """RmsNorm's epsilon must be finite and above 0 (else NaN embeddings)."""
    body = {
        "input_batch": [{"content": "hello", "id": "d1"}],
        "normalization_method": {"RmsNorm": {"epsilon": -1.0}},
    }
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/generate_embedding_batch", json=body
    )
    assert response.status_code == 400, response.text
    assert "epsilon" in response.json()["error"]["description"]


def test_non_finite_inside_a_tool_schema_is_400(cluster: Cluster) -> None:
    """NaN anywhere in a document (here a JSON-schema bound) is refused when read."""
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "description": "d",
            "parameters": {
                "type": "object",
                "properties": {"x": {"type": "number", "maximum": 123456}},
            },
        },
    }
    body = json.dumps(conversation(tools=[tool])).replace("123456", "1e999")
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "maximum" in response.json()["error"]["description"]
    assert_nobody_hurt(cluster)


# -- point 7 and 8: depth, body size -------------------------------------------------------


def test_deep_json_is_400_on_http(cluster: Cluster) -> None:
    """Nesting past --max-json-depth (and past Python's recursion limit) is 400, not 500."""
    for depth in (40, 20_000):  # 20,000 is past the recursion limit, under the body limit
        body = '{"add_generation_prompt":' + "[" * depth + "]" * depth + "}"
        for url in (
            f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
            cluster.management_url + STATE_URL,
        ):
            response = cluster.http.request(
                "PUT" if url.endswith("state") else "POST",
                url,
                content=body,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, (url, response.text)
            assert "nested too deeply" in response.json()["error"]["description"]
    assert_nobody_hurt(cluster)


def test_body_over_the_limit_is_413_naming_it(cluster: Cluster) -> None:
    """A body over --max-body-bytes is refused with 413 that says the limit."""
    body = conversation("x" * (LIMITS["max_body_bytes"] + 10))
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history", json=body
    )
    assert response.status_code == 413
    description = response.json()["error"]["description"]
    assert str(LIMITS["max_body_bytes"]) in description
    assert "--max-body-bytes" in description
    assert_nobody_hurt(cluster)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ('{"model":"m","messages":' + "[" * 20_000 + "]" * 20_000 + "}", 400, "nested too deeply"),
        (
            '{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",'
            '"function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":'
            '"number","maximum":1e999}}}}}]}',
            400,
            "tools[0].function.parameters.properties.x.maximum",
        ),
        ('{"model":"m","messages":[{"role":"user","content":"' + "x" * 70_000 + '"}]}', 413, ""),
    ],
    ids=["deep", "non-finite-in-tool-schema", "too-big"],
)
def test_openai_api_refuses_bad_bodies_clearly(
    cluster: Cluster, body: str, status: int, words: str
) -> None:
    """The OpenAI API answers the same bad inputs with an OpenAI error, never a 500."""
    url = f"http://{cluster.balancer_flags['compat_openai_addr']}/v1/chat/completions"
    response = cluster.http.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert words in json.dumps(response.json()["error"])
    assert_nobody_hurt(cluster)


# -- the inference socket ------------------------------------------------------------------


def ws_request(request_id: str, max_tokens: int = 6, **extra: Any) -> str:
    params = conversation("Say hello.", max_tokens=max_tokens, **extra)
    return json.dumps(
        {"Request": {"id": request_id, "request": {"ContinueFromConversationHistory": params}}}
    )


async def read_until_terminal(socket: Any, wanted: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Frames by request id until every id in ``wanted`` got a Done or an Error."""
    frames: dict[str, list[dict[str, Any]]] = {}
    pending = set(wanted)
    with anyio.fail_after(RECEIVE_TIMEOUT):
        while pending:
            frame = json.loads(await socket.recv())
            if "Notification" in frame:
                continue
            envelope = frame.get("Response") or frame.get("Error")
            request_id = envelope["request_id"]
            frames.setdefault(request_id, []).append(frame)
            if "Error" in frame or is_done(frame):
                pending.discard(request_id)
    return frames


@pytest.mark.anyio
async def test_deep_frame_fails_only_its_request(cluster: Cluster) -> None:
    """A frame too deep to read gets an Error 400 for its id; the socket's other request ends."""
    async with connect(cluster.inference_socket_url) as socket:
        await socket.send(ws_request("good"))
        deep = '{"Request":{"id":"deep","request":' + "[" * 20_000 + "]" * 20_000 + "}}"
        await socket.send(deep)
        frames = await read_until_terminal(socket, {"good", "deep"})
    (error,) = frames["deep"]
    assert error["Error"]["error"]["code"] == 400
    assert "nested too deeply" in error["Error"]["error"]["description"]
    assert is_done(frames["good"][-1])
    assert_nobody_hurt(cluster)


@pytest.mark.anyio
async def test_long_request_id_is_refused_once(cluster: Cluster) -> None:
    """An id over --max-request-id-length gets one Error 400; no token echoes it."""
    long_id = "i" * (LIMITS["max_request_id_length"] + 1)
    async with connect(cluster.inference_socket_url) as socket:
        await socket.send(ws_request(long_id))
        await socket.send(ws_request("ok"))
        frames = await read_until_terminal(socket, {long_id, "ok"})
    (error,) = frames[long_id]
    assert error["Error"]["error"]["code"] == 400
    assert "--max-request-id-length" in error["Error"]["error"]["description"]
    assert is_done(frames["ok"][-1])


@pytest.mark.anyio
async def test_in_flight_limit_per_socket_is_429(cluster: Cluster) -> None:
    """One request over --max-in-flight-per-socket gets Error 429; the others complete."""
    async with connect(cluster.inference_socket_url) as socket:
        await socket.send(ws_request("a", max_tokens=8))
        await socket.send(ws_request("b", max_tokens=8))
        await socket.send(ws_request("c"))
        frames = await read_until_terminal(socket, {"a", "b", "c"})
    (refused,) = frames["c"]
    assert refused["Error"]["error"]["code"] == 429
    assert "--max-in-flight-per-socket" in refused["Error"]["error"]["description"]
    assert is_done(frames["a"][-1]) and is_done(frames["b"][-1])
    assert_nobody_hurt(cluster)


@pytest.mark.anyio
async def test_frame_over_the_limit_closes_only_that_socket(cluster: Cluster) -> None:
    """A message over --max-frame-bytes closes its socket with 1009; another socket goes on."""
    async with (
        connect(cluster.inference_socket_url) as bystander,
        connect(cluster.inference_socket_url, max_size=None) as offender,
    ):
        await bystander.send(ws_request("bystander", max_tokens=20))
        await offender.send("x" * (LIMITS["max_frame_bytes"] + 1))
        with pytest.raises(ConnectionClosed) as closed:
            with anyio.fail_after(RECEIVE_TIMEOUT):
                while True:
                    await offender.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        frames = await read_until_terminal(bystander, {"bystander"})
    assert is_done(frames["bystander"][-1])
    assert_nobody_hurt(cluster)


@pytest.mark.anyio
async def test_connections_over_the_limit_are_refused_with_a_reason(cluster: Cluster) -> None:
    """Past --max-connections a WebSocket closes with 1013 and HTTP gets 503; then all is well."""
    limit = LIMITS["max_connections"]
    sockets = []
    try:
        while True:
            socket = await connect(cluster.inference_socket_url)
            sockets.append(socket)
            try:
                with anyio.fail_after(0.2):
                    await socket.recv()  # accepted sockets stay silent; a refused one closes
            except TimeoutError:
                assert len(sockets) <= limit
                continue
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 1013
                assert "--max-connections" in exc.rcvd.reason
                break
        assert len(sockets) == limit + 1
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{cluster.inference_url}/health")
        assert response.status_code == 503
        assert "--max-connections" in response.json()["error"]["description"]
    finally:
        for socket in sockets:
            await socket.close()
    with anyio.fail_after(10.0):
        while True:  # the server sees the closes soon after; wait on it, not on a sleep
            async with httpx.AsyncClient() as client:
                if (await client.get(f"{cluster.inference_url}/health")).status_code == 200:
                    break
            await anyio.sleep(0.05)
    assert_nobody_hurt(cluster)


# -- the agent socket ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_bad_frames_from_an_agent_hurt_nobody(cluster: Cluster) -> None:
    """NaN, huge numbers and deep nesting from an agent are skipped; its socket stays open."""
    url = f"ws://127.0.0.1:{cluster.management_port}/api/v1/agent_socket/intruder"
    async with connect(url) as socket:
        await socket.recv()  # the balancer's Version
        for frame in (
            '{"Notification":{"UpdateAgentStatus":{"x":NaN}}}',
            '{"Response":{"generated_by":null,"request_id":"r","response":1e999}}',
            "[" * 20_000 + "]" * 20_000,
        ):
            await socket.send(frame)
        with anyio.fail_after(10.0):  # a pong comes back only while the socket is open
            await (await socket.ping())
    assert_nobody_hurt(cluster)
