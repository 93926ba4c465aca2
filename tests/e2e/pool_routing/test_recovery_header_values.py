"""``Paddler-Stream-Recovery`` with a value that is neither off nor on: a 400 naming the
header on every surface, before any answer starts, and the next request is served as usual.
Runs on the shared pools cluster (real balancer and agents on the demo model)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from e2e_cluster import conversation, ndjson, tokens_of
from pool_routing_cluster import ALL_KEY, OpenAICluster
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

pytestmark = [pytest.mark.e2e, pytest.mark.model]

NAMED = "Paddler-Stream-Recovery header: 'maybe'"


def chat(cluster: OpenAICluster, recovery: str) -> httpx.Response:
    headers = {
        "authorization": f"Bearer {ALL_KEY}",
        "Paddler-Pool": "chat",
        "Paddler-Stream-Recovery": recovery,
    }
    url = f"{cluster.inference_url}/api/v1/continue_from_conversation_history"
    return cluster.http.post(url, json=conversation(max_tokens=4), headers=headers)


def test_native_http_refuses_the_value_then_serves(pools_cluster: OpenAICluster) -> None:
    refused = chat(pools_cluster, "maybe")
    assert refused.status_code == 400, refused.text
    assert NAMED in refused.json()["error"]["description"]
    for value in ("off", "on"):
        served = chat(pools_cluster, value)
        assert served.status_code == 200 and tokens_of(ndjson(served)), served.text


@pytest.mark.anyio
async def test_the_socket_upgrade_refuses_the_value(pools_cluster: OpenAICluster) -> None:
    headers = {"authorization": f"Bearer {ALL_KEY}", "Paddler-Stream-Recovery": "maybe"}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(pools_cluster.inference_socket_url, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 400
    assert NAMED in json.loads(refused.value.response.body)["error"]["description"]


@pytest.mark.parametrize("stream", [False, True])
def test_openai_refuses_the_value_then_serves(pools_cluster: OpenAICluster, stream: bool) -> None:
    messages: list[dict[str, str]] = [{"role": "user", "content": "Say hello."}]
    with openai.OpenAI(
        base_url=pools_cluster.openai_url, api_key=ALL_KEY, max_retries=0, timeout=120.0
    ) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="chat",
                messages=messages,  # type: ignore[arg-type]
                max_tokens=4,
                stream=stream,
                extra_headers={"Paddler-Stream-Recovery": "maybe"},
            )
        assert NAMED in refused.value.message
        answer = client.chat.completions.create(
            model="chat",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=4,
            extra_headers={"Paddler-Stream-Recovery": "off"},
        )
        assert answer.choices[0].message.content
