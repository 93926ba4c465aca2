"""The inference and management APIs of a real balancer with one real agent (subprocesses).

Driven by the PyPI ``paddler-client`` where it has the call, raw httpx/websockets otherwise.
One cluster for the module; every test leaves it idle and in the state it found it.
"""

from __future__ import annotations

import json
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
    is_done,
    ndjson,
    running_cluster,
    tokens_of,
)
from paddler_client import ClientInference, ClientManagement
from paddler_client.continue_from_conversation_history_params import (
    ContinueFromConversationHistoryParams,
)
from paddler_client.conversation_message import ConversationMessage
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PANEL_ORIGIN = "http://panel.example:9000"
RECEIVE_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("api"),
        model_path,
        agents=[("alpha", 2)],
        inference_cors_allowed_host=PANEL_ORIGIN,
        management_cors_allowed_host=PANEL_ORIGIN,
    ) as cluster:
        yield cluster


def client_params(text: str = "Say hello.", max_tokens: int = 12) -> Any:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=[ConversationMessage(role="user", content=text)],
        enable_thinking=False,
        max_tokens=max_tokens,
    )


def ws_request(request_id: str, max_tokens: int = 12, **extra: Any) -> str:
    return json.dumps(
        {
            "Request": {
                "id": request_id,
                "request": {
                    "ContinueFromConversationHistory": conversation(max_tokens=max_tokens, **extra)
                },
            }
        }
    )


async def receive_json(socket: Any) -> dict[str, Any]:
    with anyio.fail_after(RECEIVE_TIMEOUT):
        return dict(json.loads(await socket.recv()))


async def read_until_terminal(socket: Any, request_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    while True:
        message = await receive_json(socket)
        if (
            message.get("Response", {}).get("request_id") == request_id
            or message.get("Error", {}).get("request_id") == request_id
        ):
            lines.append(message)
            if is_done(message) or "Error" in message:
                return lines


# -- health and NDJSON -------------------------------------------------------------------


@pytest.mark.anyio
async def test_health_of_both_services(cluster: Cluster) -> None:
    """``/health`` answers ``OK`` as text/plain on the inference and management services."""
    async with ClientInference(cluster.inference_url) as inference:
        assert await inference.get_health() == "OK"
    async with ClientManagement(cluster.management_url) as management:
        assert await management.get_health() == "OK"
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{cluster.management_url}/health")
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.anyio
async def test_conversation_over_ndjson_with_paddler_client(cluster: Cluster) -> None:
    """paddler-client's HTTP call streams tokens from the named agent and ends with Done."""
    async with ClientInference(cluster.inference_url) as client:
        messages = [
            m async for m in client.post_continue_from_conversation_history(client_params())
        ]
    assert messages[-1].is_done
    assert any(m.is_token and m.token for m in messages)
    assert {m.generated_by for m in messages} == {"alpha"}
    assert messages[-1].summary is not None and messages[-1].summary.usage.prompt_tokens > 0


def test_raw_prompt_over_ndjson(cluster: Cluster) -> None:
    """A raw prompt streams NDJSON (application/json, no-cache) ending with a Done line."""
    body = {
        "raw_prompt": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "max_tokens": 8,
    }
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_raw_prompt", json=body
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-cache"
    lines = ndjson(response)
    assert is_done(lines[-1])
    request_ids = {line["Response"]["request_id"] for line in lines}
    assert len(request_ids) == 1 and request_ids != {""}


def test_usage_counts_max_tokens(cluster: Cluster) -> None:
    """With max_tokens=5 the terminal usage reports at most 5 completion tokens."""
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation("Count to twenty.", max_tokens=5),
    )
    done = ndjson(response)[-1]["Response"]["response"]["GeneratedToken"]["Done"]
    assert 0 < done["usage"]["content_tokens"] <= 5


# -- early errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "invalid JSON"),
        (json.dumps({**conversation(), "bogus": 1}).encode(), "bogus"),
        (json.dumps({**conversation(), "max_tokens": "ten"}).encode(), "max_tokens"),
        (json.dumps({"add_generation_prompt": True}).encode(), "conversation_history"),
        (b"", "empty"),
    ],
    ids=["malformed-json", "unknown-field", "wrong-type", "missing-field", "empty-body"],
)
def test_bad_bodies_get_400_naming_the_field(cluster: Cluster, body: bytes, field: str) -> None:
    """Malformed JSON and bad fields are HTTP 400 whose body names what is wrong."""
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["description"]


def test_tool_with_required_name_missing_from_properties_is_400(cluster: Cluster) -> None:
    """A tool whose ``required`` names a property it does not declare is rejected up front."""
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["country"],
            },
        },
    }
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation(tools=[tool]),
    )
    assert response.status_code == 400
    assert "country" in response.json()["error"]["description"]


def test_embeddings_when_not_enabled_is_501(cluster: Cluster) -> None:
    """An embedding batch on a generation cluster is 501 with Paddler's message."""
    body = {"input_batch": [{"id": "d1", "content": "hello"}], "normalization_method": "L2"}
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/generate_embedding_batch", json=body
    )
    assert response.status_code == 501
    assert "not enabled" in response.json()["error"]["description"]


# -- the inference WebSocket -------------------------------------------------------------


@pytest.mark.anyio
async def test_websocket_conversation_with_paddler_client(cluster: Cluster) -> None:
    """paddler-client's WebSocket call streams tokens and ends with Done."""
    async with ClientInference(cluster.inference_url) as client:
        stream = await client.continue_from_conversation_history(client_params())
        messages = [m async for m in stream]
    assert messages[-1].is_done
    assert any(m.is_token for m in messages)


@pytest.mark.anyio
async def test_garbage_frames_get_errors_and_the_socket_keeps_working(cluster: Cluster) -> None:
    """Malformed JSON and unknown fields get an Error envelope; binary frames are ignored."""
    async with connect(cluster.inference_socket_url) as socket:
        await socket.send("{this is not json")
        error = await receive_json(socket)
        assert error["Error"]["error"]["code"] == 400
        await socket.send(b"\x00\x01binary")
        bad = json.loads(ws_request("bad-1"))
        bad["Request"]["request"]["ContinueFromConversationHistory"]["bogus"] = True
        await socket.send(json.dumps(bad))
        error = await receive_json(socket)
        assert error["Error"]["request_id"] == "bad-1"
        assert "bogus" in error["Error"]["error"]["description"]
        await socket.send(ws_request("good-1"))
        lines = await read_until_terminal(socket, "good-1")
        assert is_done(lines[-1])


@pytest.mark.anyio
async def test_duplicate_request_id_on_one_connection_is_400(cluster: Cluster) -> None:
    """A second request with an id still in flight on the same socket gets Error 400."""
    async with connect(cluster.inference_socket_url) as socket:
        await socket.send(ws_request("dup", max_tokens=64))
        await socket.send(ws_request("dup", max_tokens=64))
        seen_error = False
        while True:
            message = await receive_json(socket)
            if "Error" in message:
                assert message["Error"]["error"]["code"] == 400
                assert "already in flight" in message["Error"]["error"]["description"]
                seen_error = True
            elif is_done(message):
                break
        assert seen_error
    cluster.wait_idle()


@pytest.mark.anyio
async def test_request_ids_are_per_connection(cluster: Cluster) -> None:
    """Two sockets using the same request id each get their own complete answer."""
    async with (
        connect(cluster.inference_socket_url) as first,
        connect(cluster.inference_socket_url) as second,
    ):
        await first.send(ws_request("same"))
        await second.send(ws_request("same"))
        one = await read_until_terminal(first, "same")
        two = await read_until_terminal(second, "same")
    assert is_done(one[-1]) and is_done(two[-1])
    assert tokens_of(one) == tokens_of(two)  # deterministic preset: same prompt, same text


@pytest.mark.anyio
async def test_stop_responding_to_ends_with_done_and_frees_the_slot(cluster: Cluster) -> None:
    """StopRespondingTo ends the request with a terminal Done carrying usage so far."""
    async with connect(cluster.inference_socket_url) as socket:
        await socket.send(
            ws_request(
                "long",
                max_tokens=2000,
                conversation_history=[
                    {"role": "user", "content": "Write a very long story about a lighthouse."}
                ],
            )
        )
        first = await receive_json(socket)
        assert "Response" in first
        await socket.send(json.dumps({"Notification": {"StopRespondingTo": "long"}}))
        lines = await read_until_terminal(socket, "long")
    done = lines[-1]["Response"]["response"]["GeneratedToken"]["Done"]
    assert done["usage"]["content_tokens"] < 2000
    cluster.wait_idle()


@pytest.mark.anyio
async def test_closing_the_socket_cancels_its_requests(cluster: Cluster) -> None:
    """A client that closes its socket mid-stream frees the agent slot."""
    async with connect(cluster.inference_socket_url) as socket:
        await socket.send(ws_request("gone", max_tokens=2000))
        await receive_json(socket)
    cluster.wait_idle()


def test_http_client_leaving_mid_stream_frees_the_slot(cluster: Cluster) -> None:
    """Closing an NDJSON response early stops generation on the agent."""
    with cluster.http.stream(
        "POST",
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation("Write a very long story.", max_tokens=2000),
    ) as response:
        for _line in response.iter_lines():
            break
    cluster.wait_idle()


# -- management --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_agents_and_their_stream(cluster: Cluster) -> None:
    """The agent list and the first SSE snapshot show the agent with its slots and model."""
    async with ClientManagement(cluster.management_url) as management:
        agents = (await management.get_agents()).agents
        async for snapshot in management.agents_stream():
            streamed = snapshot.agents
            break
    assert [a.name for a in agents] == ["alpha"] == [a.name for a in streamed]
    assert agents[0].slots_total == 2 and agents[0].desired_slots_total == 2
    assert agents[0].model_path == str(cluster.model_path)


@pytest.mark.anyio
async def test_buffered_requests_and_their_stream(cluster: Cluster) -> None:
    """Nothing is buffered on an idle cluster; the stream's first event says so too."""
    async with ClientManagement(cluster.management_url) as management:
        assert (await management.get_buffered_requests()).buffered_requests_current == 0
        async for snapshot in management.buffered_requests_stream():
            assert snapshot.buffered_requests_current == 0
            break


@pytest.mark.anyio
async def test_desired_state_round_trip_and_applicable_state(cluster: Cluster) -> None:
    """GET returns the document that was PUT; the applicable state carries the same model."""
    async with ClientManagement(cluster.management_url) as management:
        state = await management.get_balancer_desired_state()
    assert state.inference_parameters.temperature == 0.0
    raw = cluster.http.get(f"{cluster.management_url}/api/v1/balancer_desired_state").json()
    assert raw == desired_state(cluster.model_path)
    applicable = cluster.http.get(
        f"{cluster.management_url}/api/v1/balancer_applicable_state"
    ).json()
    assert applicable["model"] == {"LocalToAgent": str(cluster.model_path)}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"embedding_batch_size": 0}, "embedding_batch_size"),
        ({"image_resize_to_fit": 0}, "image_resize_to_fit"),
        ({"top_k": "many"}, "top_k"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_desired_state_is_400_and_changes_nothing(
    cluster: Cluster, change: dict[str, Any], field: str
) -> None:
    """A PUT that fails validation names the field and leaves the stored state alone."""
    before = cluster.http.get(f"{cluster.management_url}/api/v1/balancer_desired_state").json()
    response = cluster.put_state(desired_state(cluster.model_path, **change))
    assert response.status_code == 400
    assert field in response.text
    after = cluster.http.get(f"{cluster.management_url}/api/v1/balancer_desired_state").json()
    assert after == before


@pytest.mark.anyio
async def test_per_agent_rpcs(cluster: Cluster) -> None:
    """Model metadata and chat template override are fetched from the agent; unknown is 404."""
    agent_id = cluster.agents_snapshot()[0]["id"]
    async with ClientManagement(cluster.management_url) as management:
        metadata = await management.get_model_metadata(agent_id)
        override = await management.get_chat_template_override(agent_id)
    assert metadata is not None and metadata.metadata["general.architecture"] == "llama"
    assert override is None
    missing = cluster.http.get(f"{cluster.management_url}/api/v1/agent/nobody/model_metadata")
    assert missing.status_code == 404


def test_metrics_in_prometheus_format(cluster: Cluster) -> None:
    """``/metrics`` has Paddler's three gauges with the configured prefix."""
    response = cluster.http.get(f"{cluster.management_url}/metrics")
    assert response.headers["content-type"] == (
        "text/plain; version=0.0.4; charset=utf-8; escaping=values"
    )
    text = response.text
    assert "# TYPE paddler_slots_total gauge" in text
    values = {
        name: float(value)
        for name, value in (
            line.split() for line in text.splitlines() if line.startswith("paddler_")
        )
        if name in ("paddler_slots_total", "paddler_slots_processing", "paddler_requests_buffered")
    }
    assert values == {
        "paddler_slots_total": 2.0,
        "paddler_slots_processing": 0.0,
        "paddler_requests_buffered": 0.0,
    }


@pytest.mark.parametrize("service", ["inference", "management"])
def test_cors_allows_configured_origin_only(cluster: Cluster, service: str) -> None:
    """CORS preflight answers the configured origin and refuses others."""
    url = cluster.inference_url if service == "inference" else cluster.management_url
    headers = {
        "origin": PANEL_ORIGIN,
        "access-control-request-method": "PUT",
        "access-control-request-headers": "content-type",
    }
    allowed = cluster.http.options(f"{url}/health", headers=headers)
    assert allowed.headers.get("access-control-allow-origin") == PANEL_ORIGIN
    assert allowed.headers.get("access-control-max-age") == "3600"
    other = cluster.http.options(f"{url}/health", headers={**headers, "origin": "http://evil.test"})
    assert other.headers.get("access-control-allow-origin") != "http://evil.test"


# -- embeddings mode (last: it reloads the model, then restores the state) ----------------


@pytest.mark.anyio
async def test_embeddings_mode_flips_generation_off_and_on(cluster: Cluster) -> None:
    """Embeddings mode: 501 on HTTP generation, socket notifications, then back to normal."""
    async with connect(cluster.inference_socket_url) as socket:
        response = cluster.put_state(desired_state(cluster.model_path, enable_embeddings=True))
        assert response.status_code == 204
        assert await receive_json(socket) == {"Notification": "TokenGenerationDisabled"}
        http = cluster.http.post(
            f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
            json=conversation(),
        )
        assert http.status_code == 501
        await socket.send(ws_request("while-disabled"))
        refused = await receive_json(socket)
        assert "TokenGenerationDisabled" in refused["Response"]["response"]["GeneratedToken"]
        cluster.wait_ready(1)
        body = {
            "input_batch": [{"id": f"d{i}", "content": f"text {i}"} for i in range(3)],
            "normalization_method": "L2",
        }
        lines = ndjson(
            cluster.http.post(f"{cluster.inference_url}/api/v1/generate_embedding_batch", json=body)
        )
        ids = {
            line["Response"]["response"]["Embedding"]["Embedding"]["source_document_id"]
            for line in lines[:-1]
        }
        assert ids == {"d0", "d1", "d2"}
        assert lines[-1]["Response"]["response"] == {"Embedding": "Done"}
        assert cluster.put_state(desired_state(cluster.model_path)).status_code == 204
        assert await receive_json(socket) == {"Notification": "TokenGenerationEnabled"}
    cluster.wait_ready(1)
