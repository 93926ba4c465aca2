"""A prompt that cannot fit the agent's context is the client's fault: a 400 that says so."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import OpenAI

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def test_a_prompt_longer_than_the_context_is_a_400_context_length_exceeded(
    client: OpenAI,
) -> None:
    messages: Any = [{"role": "user", "content": "word " * 6000}]  # the context holds 2048
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=messages, max_completion_tokens=4)
    assert info.value.code == "context_length_exceeded"
    assert "The prompt is" in info.value.message
    answer = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Say hi."}], max_completion_tokens=4
    )
    assert answer.choices[0].message.content
