"""The native API's ``Paddler-Pool`` header chooses the pool (``pools_cluster`` in conftest):
on the NDJSON routes, on the inference WebSocket's upgrade, and through ``paddler.client``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from e2e_cluster import conversation, ndjson, tokens_of
from pool_routing_cluster import ALL_KEY, CHAT_KEY, OpenAICluster
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from paddler.client import InferenceClient
from paddler.client.errors import HTTPStatusError
from paddler.errors import InvalidRequest
from paddler.wire import ContinueFromConversationHistoryParams, ConversationMessage

pytestmark = [pytest.mark.e2e, pytest.mark.model]

EMBEDDING_BATCH = {
    "input_batch": [{"id": "a", "content": "one"}, {"id": "b", "content": "two"}],
    "normalization_method": "L2",
}


def post(
    cluster: OpenAICluster,
    route: str,
    body: dict[str, Any],
    pool: str | None,
    key: str = ALL_KEY,
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if pool is not None:
        headers["Paddler-Pool"] = pool
    return cluster.http.post(f"{cluster.inference_url}/api/v1/{route}", json=body, headers=headers)


def generated_by(lines: list[dict[str, Any]]) -> set[str]:
    """The agents that answered (the balancer's own closing ``Done`` of a batch names none)."""
    return {
        line["Response"]["generated_by"]
        for line in lines
        if "Response" in line and line["Response"]["generated_by"] is not None
    }


def test_the_header_selects_the_pool_of_a_generation(pools_cluster: OpenAICluster) -> None:
    response = post(pools_cluster, "continue_from_conversation_history", conversation(), "chat")
    assert response.status_code == 200, response.text
    lines = ndjson(response)
    assert tokens_of(lines) and generated_by(lines) == {"agent-chat"}
    raw = {"raw_prompt": "Once upon a time", "max_tokens": 4}
    response = post(pools_cluster, "continue_from_raw_prompt", raw, "chat")
    assert response.status_code == 200 and generated_by(ndjson(response)) == {"agent-chat"}


def test_each_pool_has_its_own_mode(pools_cluster: OpenAICluster) -> None:
    """``embed`` is in embeddings mode: generation there is refused with 501 before the
    stream starts, and its embeddings come from its own agent."""
    refused = post(pools_cluster, "continue_from_conversation_history", conversation(), "embed")
    assert refused.status_code == 501, refused.text
    response = post(pools_cluster, "generate_embedding_batch", EMBEDDING_BATCH, "embed")
    assert response.status_code == 200, response.text
    lines = ndjson(response)
    assert generated_by(lines) == {"agent-embed"}
    documents = {
        line["Response"]["response"]["Embedding"]["Embedding"]["source_document_id"]
        for line in lines
        if "Embedding" in line["Response"]["response"].get("Embedding", {})
    }
    assert documents == {"a", "b"}
    disabled = post(pools_cluster, "generate_embedding_batch", EMBEDDING_BATCH, "chat")
    assert disabled.status_code == 501, disabled.text


@pytest.mark.parametrize(
    ("pool", "status", "named"),
    [("nope", 404, "'nope'"), ("no pool", 400, "Paddler-Pool"), ("", 400, "Paddler-Pool")],
)
def test_unknown_and_malformed_pools_are_refused(
    pools_cluster: OpenAICluster, pool: str, status: int, named: str
) -> None:
    for route, body in (
        ("continue_from_conversation_history", conversation()),
        ("generate_embedding_batch", EMBEDDING_BATCH),
    ):
        response = post(pools_cluster, route, body, pool)
        assert response.status_code == status, response.text
        assert named in response.json()["error"]["description"]


def test_a_key_with_models_may_use_only_those_pools(pools_cluster: OpenAICluster) -> None:
    """``models = ["fast"]`` is the alias of ``chat``: ``chat`` works, ``embed`` and the
    default pool (no header) are refused with 403 naming the pool."""
    ok = post(
        pools_cluster,
        "continue_from_raw_prompt",
        {"raw_prompt": "Hi", "max_tokens": 2},
        "chat",
        CHAT_KEY,
    )
    assert ok.status_code == 200, ok.text
    for pool, named in (("embed", "'embed'"), (None, "'default'")):
        refused = post(pools_cluster, "generate_embedding_batch", EMBEDDING_BATCH, pool, CHAT_KEY)
        assert refused.status_code == 403, refused.text
        assert named in refused.json()["error"]["description"]


def _request(request_id: str) -> str:
    return json.dumps(
        {
            "Request": {
                "id": request_id,
                "request": {"ContinueFromConversationHistory": conversation(max_tokens=4)},
            }
        }
    )


@pytest.mark.anyio
async def test_the_socket_upgrade_header_selects_the_pool(pools_cluster: OpenAICluster) -> None:
    headers = {"authorization": f"Bearer {ALL_KEY}", "Paddler-Pool": "chat"}
    async with connect(pools_cluster.inference_socket_url, additional_headers=headers) as socket:
        await socket.send(_request("r1"))
        seen: set[str] = set()
        while True:
            message = json.loads(await socket.recv())
            assert "Error" not in message, message
            seen.add(message["Response"]["generated_by"])
            if "Done" in message["Response"]["response"].get("GeneratedToken", {}):
                break
    assert seen == {"agent-chat"}


@pytest.mark.anyio
async def test_a_browser_names_the_pool_in_a_subprotocol(pools_cluster: OpenAICluster) -> None:
    """What a browser can send: no headers, only subprotocols (the key's and the pool's)."""
    offered = ["paddler", f"paddler.bearer.{ALL_KEY}", "paddler.pool.chat"]
    async with connect(pools_cluster.inference_socket_url, subprotocols=offered) as socket:
        assert socket.subprotocol == "paddler"
        await socket.send(_request("r1"))
        seen: set[str] = set()
        while True:
            message = json.loads(await socket.recv())
            assert "Error" not in message, message
            seen.add(message["Response"]["generated_by"])
            if "Done" in message["Response"]["response"].get("GeneratedToken", {}):
                break
    assert seen == {"agent-chat"}
    with pytest.raises(InvalidStatus) as refused:
        empty = ["paddler", f"paddler.bearer.{ALL_KEY}", "paddler.pool."]
        async with connect(pools_cluster.inference_socket_url, subprotocols=empty):
            pass
    assert refused.value.response.status_code == 400
    assert "paddler.pool.NAME subprotocol" in refused.value.response.body.decode()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("pool", "key", "status"), [("nope", ALL_KEY, 404), ("embed", CHAT_KEY, 403)]
)
async def test_a_socket_for_a_pool_it_may_not_use_is_refused(
    pools_cluster: OpenAICluster, pool: str, key: str, status: int
) -> None:
    headers = {"authorization": f"Bearer {key}", "Paddler-Pool": pool}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(pools_cluster.inference_socket_url, additional_headers=headers):
            pass
    assert refused.value.response.status_code == status
    assert f"'{pool}'" in refused.value.response.body.decode()


@pytest.mark.anyio
async def test_the_python_client_sends_its_pool(pools_cluster: OpenAICluster) -> None:
    params = ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(ConversationMessage(role="user", content="Say hello."),),
        max_tokens=4,
        enable_thinking=False,
    )
    async with InferenceClient(pools_cluster.inference_url, api_key=ALL_KEY, pool="chat") as client:
        over_socket = [e async for e in await client.continue_from_conversation_history(params)]
        over_http = [e async for e in await client.post_continue_from_conversation_history(params)]
    assert {e.generated_by for e in over_socket + over_http} == {"agent-chat"}
    async with InferenceClient(
        pools_cluster.inference_url, api_key=ALL_KEY, pool="embed"
    ) as client:
        with pytest.raises(HTTPStatusError) as refused:
            await client.post_continue_from_conversation_history(params)
    assert refused.value.status_code == 501
    async with InferenceClient(pools_cluster.inference_url, api_key=ALL_KEY, pool="nope") as client:
        with pytest.raises(HTTPStatusError) as unknown:
            await client.continue_from_conversation_history(params)
    assert unknown.value.status_code == 404 and "'nope'" in unknown.value.body
    with pytest.raises(InvalidRequest, match="no pool"):
        InferenceClient(pools_cluster.inference_url, pool="no pool")
