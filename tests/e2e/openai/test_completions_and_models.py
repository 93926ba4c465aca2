"""``/v1/completions``, ``/v1/models`` and ``/health``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import Completion

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PROMPT = "<|im_start|>user\nCount from one to ten.<|im_end|>\n<|im_start|>assistant\n"


def test_completion_of_a_raw_prompt(client: OpenAI) -> None:
    completion = client.completions.create(model="smol", prompt=PROMPT, max_tokens=10)
    assert isinstance(completion, Completion)
    assert completion.choices[0].text
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.completion_tokens <= 10


def test_completion_default_limit_is_openais_16(client: OpenAI) -> None:
    completion = client.completions.create(model="smol", prompt="Once upon a time")
    assert completion.usage is not None and completion.usage.completion_tokens <= 16


def test_completion_stream_matches_the_whole_answer(client: OpenAI) -> None:
    whole = client.completions.create(model="smol", prompt=PROMPT, max_tokens=12, temperature=0)
    chunks = list(
        client.completions.create(
            model="smol",
            prompt=PROMPT,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert chunks[-1].usage is not None


def test_completion_echo_and_stop(client: OpenAI) -> None:
    whole = client.completions.create(model="smol", prompt=PROMPT, max_tokens=12, temperature=0)
    echoed = client.completions.create(
        model="smol", prompt=PROMPT, max_tokens=12, temperature=0, echo=True
    )
    assert echoed.choices[0].text == PROMPT + whole.choices[0].text
    text = whole.choices[0].text
    stop = text.split()[1] if len(text.split()) > 1 else text[-1]
    stopped = client.completions.create(
        model="smol", prompt=PROMPT, max_tokens=12, temperature=0, stop=stop
    )
    assert stopped.choices[0].text == text[: text.index(stop)]


def test_models_lists_the_loaded_model_by_its_file_name(
    client: OpenAI, openai_cluster: Any, model_path: Path
) -> None:
    """The id is the GGUF file's stem: no spaces, nothing to URL-encode."""
    models = client.models.list().data
    assert len(models) == 1
    assert models[0].id == model_path.stem == "SmolLM2-135M-Instruct.Q4_1"
    typed = httpx.get(f"{openai_cluster.openai_url}/models/SmolLM2-135M-Instruct.Q4_1")
    assert typed.status_code == 200 and typed.json()["id"] == models[0].id
    assert models[0].owned_by == "paddler"
    assert client.models.retrieve(models[0].id).id == models[0].id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    # Without a model name, responses say which model answered.
    answer = client.chat.completions.create(
        model="", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
    )
    assert answer.model == models[0].id


def test_health(openai_cluster: Any) -> None:
    response = httpx.get(f"http://127.0.0.1:{openai_cluster.openai_port}/health")
    assert response.status_code == 200 and response.text == "OK"
