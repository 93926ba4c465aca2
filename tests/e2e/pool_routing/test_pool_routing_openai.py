"""The OpenAI ``model`` field chooses the pool (``pools_cluster`` in conftest): by name, by
``--model-alias``, and only among the pools a key's ``models`` allow."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI
from pool_routing_cluster import ALL_KEY, CHAT_KEY, OpenAICluster

pytestmark = [pytest.mark.e2e, pytest.mark.model]

HELLO = [{"role": "user", "content": "Say hello."}]


def sdk(cluster: OpenAICluster, key: str) -> OpenAI:
    return OpenAI(base_url=cluster.openai_url, api_key=key, max_retries=0, timeout=120.0)


@pytest.fixture
def client(pools_cluster: OpenAICluster) -> Iterator[OpenAI]:
    with sdk(pools_cluster, ALL_KEY) as client:
        yield client


@pytest.fixture
def chat_only(pools_cluster: OpenAICluster) -> Iterator[OpenAI]:
    with sdk(pools_cluster, CHAT_KEY) as client:
        yield client


def test_models_lists_the_serving_pools_and_aliases(client: OpenAI) -> None:
    """``default`` has no agent, so it is not listed; ``fast`` is the alias of ``chat``."""
    assert [model.id for model in client.models.list().data] == ["chat", "embed", "fast"]
    assert client.models.retrieve("embed").id == "embed"
    assert client.models.retrieve("fast").id == "fast"


def test_the_model_field_selects_the_pool(client: OpenAI) -> None:
    """``chat`` generates; ``embed`` is in embeddings mode, so the same chat request there
    fails with 501, and an embedding request works only there."""
    answer = client.chat.completions.create(model="chat", messages=HELLO, max_tokens=8)
    assert answer.choices[0].message.content
    assert answer.model == "chat"
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="embed", messages=HELLO, max_tokens=8)
    assert refused.value.status_code == 501
    vectors = client.embeddings.create(model="embed", input=["one", "two"])
    assert len(vectors.data) == 2 and vectors.model == "embed"
    with pytest.raises(openai.APIStatusError) as no_embeddings:
        client.embeddings.create(model="chat", input="one")
    assert no_embeddings.value.status_code == 501


def pool_requests(cluster: OpenAICluster) -> dict[str, float]:
    """``paddler_pool_requests_total{outcome="ok"}`` by pool, from ``/metrics``."""
    text = cluster.http.get(f"{cluster.management_url}/metrics").text
    found = re.findall(r"^paddler_pool_requests_total\{(.*)\} (\S+)$", text, re.MULTILINE)
    counts: dict[str, float] = {}
    for labels, value in found:
        parsed = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if parsed.get("outcome") == "ok":
            counts[parsed["pool"]] = float(value)
    return counts


def test_the_request_is_counted_in_its_pool(client: OpenAI, pools_cluster: OpenAICluster) -> None:
    """The balancer's own per-pool count: a chat naming ``fast`` finished in pool ``chat``."""
    before = pool_requests(pools_cluster)
    client.chat.completions.create(model="fast", messages=HELLO, max_tokens=4)
    # The balancer counts a request as its stream closes, just after the answer went out.
    after = pool_requests(pools_cluster)
    deadline = time.monotonic() + 10.0  # a safety net, not a timing assertion
    while after.get("chat", 0) == before.get("chat", 0) and time.monotonic() < deadline:
        time.sleep(0.05)
        after = pool_requests(pools_cluster)
    assert after.get("chat", 0) == before.get("chat", 0) + 1
    assert after.get("embed", 0) == before.get("embed", 0)


def test_an_alias_reaches_its_pool_and_is_echoed(client: OpenAI) -> None:
    completion = client.completions.create(model="fast", prompt="Once upon a time", max_tokens=8)
    assert completion.choices[0].text and completion.model == "fast"
    response = client.responses.create(model="fast", input="Say hello.", max_output_tokens=8)
    assert response.output_text and response.model == "fast"


@pytest.mark.parametrize("endpoint", ["chat", "completions", "responses", "embeddings"])
def test_an_unknown_model_is_not_found(client: OpenAI, endpoint: str) -> None:
    """Every endpoint answers OpenAI's 404 ``model_not_found``, naming the model."""
    calls = {
        "chat": lambda: client.chat.completions.create(model="nope", messages=HELLO),
        "completions": lambda: client.completions.create(model="nope", prompt="x"),
        "responses": lambda: client.responses.create(model="nope", input="x"),
        "embeddings": lambda: client.embeddings.create(model="nope", input="x"),
    }
    with pytest.raises(openai.NotFoundError) as missing:
        calls[endpoint]()
    assert missing.value.code == "model_not_found"
    assert "'nope'" in missing.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_a_key_with_models_sees_and_uses_only_those_pools(chat_only: OpenAI) -> None:
    """``models = ["fast"]`` resolves to pool ``chat``: both of its names are listed and
    work; ``embed`` answers as if it did not exist."""
    assert [model.id for model in chat_only.models.list().data] == ["chat", "fast"]
    answer = chat_only.chat.completions.create(model="chat", messages=HELLO, max_tokens=4)
    assert answer.choices[0].message.content
    with pytest.raises(openai.NotFoundError) as refused:
        chat_only.embeddings.create(model="embed", input="one")
    assert refused.value.code == "model_not_found"
    assert refused.value.body == {  # word for word what a typo gets
        "message": "The model 'embed' does not exist",
        "type": "not_found_error",
        "param": "model",
        "code": "model_not_found",
    }
    with pytest.raises(openai.NotFoundError):
        chat_only.models.retrieve("embed")
