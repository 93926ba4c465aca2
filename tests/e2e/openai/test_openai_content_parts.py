"""Content parts (``[{"type": "text", ...}]``), as many OpenAI clients send them, through ``/v1``.

The demo model's template (ChatML, like Qwen2.5) concatenates strings; the parts are joined for
it, so a parts request answers exactly what the same text as a string does.
"""

from __future__ import annotations

from typing import Any

import pytest
from openai import OpenAI

pytestmark = [pytest.mark.e2e, pytest.mark.model]

GREEDY: dict[str, Any] = {"temperature": 0.0, "seed": 7, "max_tokens": 8}


def ask(client: OpenAI, content: Any, *, stream: bool = False) -> str:
    messages: Any = [
        {"role": "system", "content": [{"type": "text", "text": "You answer in one word."}]},
        {"role": "user", "content": content},
    ]
    if stream:
        chunks = client.chat.completions.create(
            model="any", messages=messages, stream=True, **GREEDY
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    completion = client.chat.completions.create(model="any", messages=messages, **GREEDY)
    assert completion.choices[0].finish_reason in ("stop", "length")
    return completion.choices[0].message.content or ""


def test_text_parts_answer_like_the_same_text_as_a_string(client: OpenAI) -> None:
    """The first example of docs/openai.md works, and matches the string form."""
    from_parts = ask(client, [{"type": "text", "text": "Name a fruit."}])
    assert from_parts
    assert from_parts == ask(client, "Name a fruit.")


def test_several_text_parts_stream_like_their_joined_text(client: OpenAI) -> None:
    """Two text parts are one message of two lines, streamed or not."""
    parts = [{"type": "text", "text": "Name a fruit."}, {"type": "text", "text": "Only one."}]
    assert ask(client, parts, stream=True) == ask(client, "Name a fruit.\nOnly one.")
