"""``requests_total{outcome=...}`` on ``/metrics`` counts what a client actually got.

A chat template that refuses one message gives the OpenAI client a 400 and is counted as 400
(not ok); requests refused before dispatch are counted with their status; a request the client
cancels counts as cancelled, never as a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from e2e_cluster import conversation, desired_state
from openai import OpenAI
from openai_cluster import OpenAICluster, start_cluster

from paddler.client import SyncInferenceClient
from paddler.wire import ContentToken, ContinueFromConversationHistoryParams, converter

pytestmark = [pytest.mark.e2e, pytest.mark.model]

#: SmolLM2's ChatML, but a user message "explode" makes the template raise.
REFUSING = (
    "{% for m in messages %}{% if m['content'] == 'explode' %}"
    "{{ raise_exception('no explosions') }}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[OpenAICluster]:
    running = start_cluster(tmp_path_factory.mktemp("outcomes"), model_path, slots=1)
    try:
        state = desired_state(model_path)
        state["chat_template_override"] = {"content": REFUSING}
        state["use_chat_template_override"] = True
        assert running.put_state(state).status_code == 204
        running.wait_ready(1)
        yield running
    finally:
        running.stop()


def outcomes(cluster: OpenAICluster) -> dict[str, float]:
    text = httpx.get(f"{cluster.management_url}/metrics").text
    return {
        m[1]: float(m[2])
        for m in re.finditer(r'^paddler_requests_total\{outcome="([^"]+)"\} (\S+)$', text, re.M)
    }


def test_outcomes_count_what_the_client_got(cluster: OpenAICluster) -> None:
    before = outcomes(cluster)
    client = OpenAI(base_url=cluster.openai_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": "explode"}], max_tokens=4
        )
    assert refused.value.code == "chat_template_error"
    with pytest.raises(openai.BadRequestError):  # refused while reading the body
        client.chat.completions.create(model="any", messages=[], max_tokens=4)
    bad_json = httpx.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history", content=b"{"
    )
    assert bad_json.status_code == 400
    ok = client.chat.completions.create(
        model="any", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert ok.choices[0].message.content is not None
    params = converter.structure(
        conversation("Write a long story.", max_tokens=400), ContinueFromConversationHistoryParams
    )
    with (
        SyncInferenceClient(cluster.inference_url) as native,
        native.continue_from_conversation_history(params) as stream,
    ):
        for envelope in stream:
            if isinstance(envelope.response, ContentToken):
                break  # leaving the stream cancels the request
    cluster.wait_idle()
    after = outcomes(cluster)
    grown = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert grown == {"400": 3.0, "ok": 1.0, "cancelled": 1.0}
