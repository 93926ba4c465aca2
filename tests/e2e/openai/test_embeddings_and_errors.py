"""``/v1/embeddings`` in embeddings mode, and the status codes of cluster-level failures."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx
import openai
import pytest
from openai import OpenAI
from openai_cluster import OpenAICluster, start_cluster

from paddler.client import HTTPStatusError, InferenceClient
from paddler.wire import (
    L2,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    Embedding,
    EmbeddingDone,
    EmbeddingInputDocument,
    GenerateEmbeddingBatchParams,
    TokenGenerationDisabled,
    TokenGenerationDisabledNotification,
)

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture
def embed_client(embeddings_cluster: OpenAICluster) -> Iterator[OpenAI]:
    with OpenAI(base_url=embeddings_cluster.openai_url, api_key="x", max_retries=0) as sdk:
        yield sdk


TEXTS = ["A cat sits on the mat.", "Stock prices fell sharply today.", "A cat sits on the mat."]


def test_float_and_base64_embeddings_agree(embed_client: OpenAI) -> None:
    floats = embed_client.embeddings.create(model="smol", input=TEXTS, encoding_format="float")
    packed = embed_client.embeddings.create(model="smol", input=TEXTS)  # the SDK asks for base64
    assert [d.index for d in floats.data] == [0, 1, 2]
    dims = {len(d.embedding) for d in floats.data}
    assert dims == {576}
    for a, b in zip(floats.data, packed.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    first = floats.data[0].embedding
    assert math.sqrt(sum(x * x for x in first)) == pytest.approx(1.0, abs=1e-3)
    assert floats.data[2].embedding == pytest.approx(first, abs=1e-5)
    assert floats.data[1].embedding != pytest.approx(first, abs=1e-3)


def test_usage_counts_the_input_tokens(embed_client: OpenAI, model_path: Path) -> None:
    """prompt_tokens is what the agent's tokenizer made of the inputs (BOS included), not 0."""
    from llama_cpp import Llama

    vocab = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    expected = sum(len(vocab.tokenize(t.encode(), add_bos=True, special=True)) for t in TEXTS)
    result = embed_client.embeddings.create(model="smol", input=TEXTS, encoding_format="float")
    assert expected > len(TEXTS)
    assert result.usage.prompt_tokens == expected
    assert result.usage.total_tokens == expected


def test_single_string_input(embed_client: OpenAI) -> None:
    result = embed_client.embeddings.create(model="smol", input="hello", encoding_format="float")
    assert len(result.data) == 1 and result.object == "list"


def test_generation_on_an_embeddings_cluster_is_501(embed_client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        embed_client.chat.completions.create(
            model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
    assert info.value.status_code == 501


def test_embeddings_on_a_generation_cluster_is_a_clear_501(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.embeddings.create(model="smol", input="hello")
    assert info.value.status_code == 501
    assert "enable_embeddings" in info.value.message


@pytest.mark.anyio
async def test_paddler_client_embedding_batch(
    embeddings_cluster: OpenAICluster, openai_cluster: OpenAICluster
) -> None:
    params = GenerateEmbeddingBatchParams(
        input_batch=tuple(
            EmbeddingInputDocument(id=f"d{i}", content=t) for i, t in enumerate(TEXTS)
        ),
        normalization_method=L2(),
    )
    async with InferenceClient(embeddings_cluster.inference_url) as client:
        results = [e.response async for e in await client.generate_embedding_batch(params)]
    vectors = {r.source_document_id: r for r in results if isinstance(r, Embedding)}
    assert set(vectors) == {"d0", "d1", "d2"}
    assert isinstance(results[-1], EmbeddingDone)
    async with InferenceClient(openai_cluster.inference_url) as client:
        with pytest.raises(HTTPStatusError) as info:
            await client.generate_embedding_batch(params)
        assert info.value.status_code == 501


@pytest.fixture(scope="module")
def empty_balancers(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[tuple[OpenAICluster, OpenAICluster]]:
    """Balancers with no agents: one that cannot buffer, one with a short buffer timeout."""
    no_buffer = start_cluster(
        tmp_path_factory.mktemp("full"),
        model_path,
        slots=1,
        agents=0,
        max_buffered_requests=0,
        inference_cors_allowed_host="http://app.example",
    )
    short = start_cluster(
        tmp_path_factory.mktemp("slow"), model_path, slots=1, agents=0, buffered_request_timeout=300
    )
    yield no_buffer, short
    no_buffer.stop()
    short.stop()


def _chat(url: str, **extra: Any) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **extra}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=30)


def test_buffer_full_is_503_with_retry_after(empty_balancers: Any) -> None:
    no_buffer, _ = empty_balancers
    for extra in ({}, {"stream": True}):
        response = _chat(no_buffer.openai_url, **extra)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["message"]
    with (
        OpenAI(base_url=no_buffer.openai_url, api_key="x", max_retries=0) as sdk,
        pytest.raises(openai.APIStatusError) as info,
    ):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 503


def test_buffer_timeout_is_504(empty_balancers: Any) -> None:
    _, short = empty_balancers
    for path, body in (
        ("chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "stream": True}),
        ("responses", {"input": "Hi"}),
        ("completions", {"prompt": "Hi"}),
    ):
        response = httpx.post(f"{short.openai_url}/{path}", json={"model": "m", **body}, timeout=30)
        assert response.status_code == 504, response.text
        assert response.json()["error"]["type"] == "timeout"


@pytest.mark.anyio
async def test_embeddings_mode_notifications_and_disabled_generation(
    embeddings_cluster: OpenAICluster,
) -> None:
    """The inference socket says generation is off, and a request ends with that result."""
    async with InferenceClient(embeddings_cluster.inference_url) as client:
        with anyio.fail_after(10):
            async for notification in client.notifications():
                assert isinstance(notification, TokenGenerationDisabledNotification)
                break
        assert client.token_generation_enabled is False
        params = ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=(ConversationMessage(role="user", content="Hi"),),
            enable_thinking=False,
            max_tokens=4,
        )
        results = [
            e.response async for e in await client.continue_from_conversation_history(params)
        ]
        assert isinstance(results[-1], TokenGenerationDisabled)


def test_agent_gone_mid_request_is_502(tmp_path: Path, model_path: Path) -> None:
    cluster = start_cluster(tmp_path, model_path, slots=1, parameters={"context_size": 2048})
    try:
        outcome: dict[str, Any] = {}

        def ask() -> None:
            outcome["response"] = httpx.post(
                f"{cluster.openai_url}/chat/completions",
                json={
                    "model": "m",
                    "max_tokens": 1500,
                    "messages": [{"role": "user", "content": "Write a very long story."}],
                },
                timeout=60,
            )

        with anyio.from_thread.start_blocking_portal() as portal:
            future = portal.start_task_soon(anyio.to_thread.run_sync, ask)
            cluster.wait_agents(
                lambda agents: any(a["slots_processing"] for a in agents),
                30,
                "the request to reach the agent",
            )
            cluster.agents["agent-0"].kill()
            future.result(timeout=60)
        response = outcome["response"]
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "agent_gone"
    finally:
        cluster.stop()


def test_cors_follows_the_inference_origins(empty_balancers: Any) -> None:
    no_buffer, _ = empty_balancers
    preflight = httpx.options(
        f"{no_buffer.openai_url}/chat/completions",
        headers={
            "Origin": "http://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    other = httpx.get(f"{no_buffer.openai_url}/models", headers={"Origin": "http://evil.example"})
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"
