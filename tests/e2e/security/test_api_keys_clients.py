"""API keys with real clients and the real model: the ``openai`` SDK, Paddler's
``paddler-client``, our ``paddler.client``; limits answering 429; per-key ``/metrics``.

One balancer (keys from ``PADDLER_API_KEYS`` and a keys file) and one agent.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from paddler_client import ClientInference
from paddler_client.continue_from_conversation_history_params import (
    ContinueFromConversationHistoryParams as ClientParams,
)
from paddler_client.conversation_message import ConversationMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e_cluster import Cluster, conversation, free_port, is_done, ndjson

from paddler.client import HTTPStatusError, InferenceClient, SyncInferenceClient
from paddler.wire import ContinueFromConversationHistoryParams
from paddler.wire import ConversationMessage as Message

SDK_KEY = "sdk-key-0123"
OTHER_KEY = "other-key-4567"
KEYS_FILE = """
[[keys]]
name = "limited"
key = "limited-key"
requests_per_minute = 2

[[keys]]
name = "thrifty"
key = "thrifty-key"
tokens_per_minute = 10
"""


def flag_name(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("keys")
    keys = tmp / "keys.toml"
    keys.write_text(KEYS_FILE)
    openai_port = free_port()
    cluster = Cluster(
        tmp, model_path, api_keys_file=keys, compat_openai_addr=f"127.0.0.1:{openai_port}"
    )
    cluster.balancer_env = {"PADDLER_API_KEYS": f"{SDK_KEY}, {OTHER_KEY}"}
    cluster.openai_port = openai_port
    try:
        cluster.start_balancer()
        cluster.load_model()
        cluster.start_agent("solo", slots=2)
        cluster.wait_ready(1)
        yield cluster
    finally:
        cluster.stop()


def openai_url(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.openai_port}/v1"


def sdk(cluster: Cluster, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=openai_url(cluster), api_key=key, max_retries=0, timeout=120)


def post(cluster: Cluster, key: str | None, **body: Any) -> httpx.Response:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    return httpx.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation(max_tokens=8, **body),
        headers=headers,
        timeout=120.0,
    )


def metric(cluster: Cluster, name: str, **labels: str) -> float:
    text = cluster.http.get(f"{cluster.management_url}/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_openai_sdk_with_and_without_its_key(cluster: Cluster) -> None:
    """The SDK's api_key is the bearer key: right works, wrong is AuthenticationError with
    OpenAI's invalid_api_key code."""
    with sdk(cluster, SDK_KEY) as client:
        answer = client.chat.completions.create(
            model="any",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
        )
    assert answer.choices[0].message.content
    with sdk(cluster, "wrong") as wrong, pytest.raises(openai.AuthenticationError) as refused:
        wrong.models.list()
    assert refused.value.code == "invalid_api_key"
    assert refused.value.status_code == 401


@pytest.mark.anyio
async def test_paddler_client_sends_the_key_in_its_url(cluster: Cluster) -> None:
    """paddler-client has no key option; a URL with the key as its password works on its
    WebSocket and its NDJSON calls alike (sent as Basic auth)."""
    url = cluster.inference_url.replace("http://", f"http://key:{OTHER_KEY}@")
    params = ClientParams(
        add_generation_prompt=True,
        conversation_history=[ConversationMessage(role="user", content="Say hello.")],
        enable_thinking=False,
        max_tokens=8,
    )
    async with ClientInference(url) as client:
        stream = await client.continue_from_conversation_history(params)
        over_socket = [m async for m in stream]
        over_http = [m async for m in client.post_continue_from_conversation_history(params)]
    assert over_socket[-1].is_done and over_http[-1].is_done


@pytest.mark.anyio
async def test_our_client_api_key_over_socket_and_http(cluster: Cluster) -> None:
    """InferenceClient(api_key=...) streams over the socket and NDJSON; without a key the
    socket handshake is an HTTPStatusError 401 with the server's message."""
    params = ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(Message(role="user", content="Say hello."),),
        enable_thinking=False,
        max_tokens=8,
    )
    async with InferenceClient(cluster.inference_url, api_key=SDK_KEY) as client:
        over_socket = [
            item async for item in await client.continue_from_conversation_history(params)
        ]
        stream = await client.post_continue_from_conversation_history(params)
        over_http = [item async for item in stream]
    assert len(over_socket) > 1 and len(over_http) > 1
    async with InferenceClient(cluster.inference_url) as keyless:
        with pytest.raises(HTTPStatusError) as refused:
            await keyless.continue_from_conversation_history(params)
    assert refused.value.status_code == 401
    with SyncInferenceClient(cluster.inference_url, api_key=SDK_KEY) as sync_client:
        assert len(list(sync_client.continue_from_conversation_history(params))) > 1


def test_requests_per_minute_429_then_nothing_lost(cluster: Cluster) -> None:
    """The third request of a minute gets 429 with Retry-After (native and OpenAI shapes);
    the two before it finished normally and the counters add up."""
    first, second = post(cluster, "limited-key"), post(cluster, "limited-key")
    third = post(cluster, "limited-key")
    assert [is_done(ndjson(r)[-1]) for r in (first, second)] == [True, True]
    assert third.status_code == 429
    assert 1 <= int(third.headers["retry-after"]) <= 60
    description = third.json()["error"]["description"]
    assert 'API key "limited" is over its requests_per_minute limit (2)' in description
    with sdk(cluster, "limited-key") as client, pytest.raises(openai.RateLimitError) as limited:
        client.completions.create(model="any", prompt="Hi", max_tokens=4)
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after"]
    assert metric(cluster, "paddler_key_requests_total", key_name="limited", outcome="ok") == 2
    assert metric(cluster, "paddler_key_requests_total", key_name="limited", outcome="429") == 2
    assert metric(cluster, "paddler_slots_processing") == 0


def test_tokens_per_minute_counts_real_usage(cluster: Cluster) -> None:
    """A request is admitted under the limit and its real usage (prompt + completion) is
    counted when it ends: the next one of the minute is refused, as "tokens"."""
    first = post(cluster, "thrifty-key")
    assert is_done(ndjson(first)[-1])
    usage = ndjson(first)[-1]["Response"]["response"]["GeneratedToken"]["Done"]["usage"]
    assert usage["prompt_tokens"] > 10
    refused = post(cluster, "thrifty-key")
    assert refused.status_code == 429
    assert "tokens_per_minute limit (10)" in refused.json()["error"]["description"]
    prompt = metric(cluster, "paddler_key_prompt_tokens_total", key_name="thrifty")
    generated = metric(cluster, "paddler_key_generated_tokens_total", key_name="thrifty")
    assert prompt == usage["prompt_tokens"]
    assert (
        generated
        == usage["content_tokens"]
        + usage["reasoning_tokens"]
        + usage["tool_call_tokens"]
        + usage["undeterminable_tokens"]
    )


def test_metrics_name_keys_never_the_keys(cluster: Cluster) -> None:
    """Per-key series use the name (key-<digest prefix> for PADDLER_API_KEYS keys); no key
    text appears in /metrics; a request without a key is 401 and counted as refused."""
    assert post(cluster, None).status_code == 401
    assert post(cluster, SDK_KEY).status_code == 200
    text = cluster.http.get(f"{cluster.management_url}/metrics").text
    for key in (SDK_KEY, OTHER_KEY, "limited-key", "thrifty-key"):
        assert key not in text
    assert (
        metric(cluster, "paddler_key_requests_total", key_name=flag_name(SDK_KEY), outcome="ok")
        >= 1
    )
    assert metric(cluster, "paddler_api_key_refused_total", reason="missing") >= 1
    assert (
        metric(cluster, "paddler_key_buffer_wait_seconds_count", key_name=flag_name(SDK_KEY)) >= 1
    )
    assert httpx.get(f"{cluster.inference_url}/health").text == "OK"
