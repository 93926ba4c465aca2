"""OpenAI content parts through the chat templates of several model families.

The templates in ``chat_templates/`` are written out as these families ship them in their
GGUFs: most concatenate ``message.content`` as a string, a few (Gemma 3, Mistral Small 3.1)
read the parts themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paddler.engine._template import MEDIA_MARKER, ChatTemplate, message_to_template
from paddler.wire import ImageUrl, ImageUrlPart, TextPart

TEMPLATES = Path(__file__).parent / "chat_templates"
FAMILIES = {
    "qwen2.5": False,
    "llama3.1": False,
    "mistral-7b-v0.3": False,
    "smollm2": False,
    "gemma3": True,
    "mistral-small-3.1": True,
}


def template(family: str) -> ChatTemplate:
    source = (TEMPLATES / f"{family}.jinja").read_text()
    return ChatTemplate(source, bos_token="<s>", eos_token="</s>")


def render(tpl: ChatTemplate, *messages: dict[str, object]) -> str:
    return tpl.render(list(messages), add_generation_prompt=True, enable_thinking=False, tools=None)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_text_parts_render_as_the_same_text_given_as_a_string(family: str) -> None:
    """A one-part user message renders exactly as the plain string would."""
    tpl = template(family)
    parts = message_to_template("user", (TextPart("What is 2+2?"),))
    assert render(tpl, parts) == render(tpl, {"role": "user", "content": "What is 2+2?"})
    assert "'type'" not in render(tpl, parts)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_is_recognised_as_reading_parts_or_strings(family: str) -> None:
    """String templates get joined text; part-reading templates get the parts."""
    assert template(family).typed_content is FAMILIES[family]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_whole_conversation_of_parts_renders(family: str) -> None:
    """System, user and assistant turns given as parts all reach the prompt as text."""
    tpl = template(family)
    prompt = render(
        tpl,
        message_to_template("system", (TextPart("Be brief."),)),
        message_to_template("user", (TextPart("Name a colour."),)),
        message_to_template("assistant", (TextPart("Blue."),)),
        message_to_template("user", (TextPart("Another."),)),
    )
    for text in ("Be brief.", "Name a colour.", "Blue.", "Another."):
        assert text in prompt


def test_several_text_parts_are_joined_with_a_newline_for_string_templates() -> None:
    """Two text parts become two lines of one message."""
    prompt = render(
        template("qwen2.5"),
        message_to_template("user", (TextPart("First line."), TextPart("Second line."))),
    )
    assert "<|im_start|>user\nFirst line.\nSecond line.<|im_end|>" in prompt


def test_an_image_part_keeps_its_media_marker_in_place() -> None:
    """The marker stays between the texts, where the image was."""
    image = ImageUrlPart(ImageUrl("data:image/png;base64,AAAA"))
    prompt = render(
        template("smollm2"),
        message_to_template("user", (TextPart("Look:"), image, TextPart("What is it?"))),
    )
    assert f"Look:\n{MEDIA_MARKER}\nWhat is it?" in prompt
