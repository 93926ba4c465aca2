"""Pick a model's chat format from its chat template and special tokens.

As llama.cpp's chat parser does, the template's own text decides first (each family's
templates write markers no other family writes); a model without a template (or with one
that names no marker) is recognised by the special tokens in its vocabulary. Anything else
gets the generic format.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from paddler.engine._formats._deepseek import CALLS_BEGIN, DEEPSEEK_R1
from paddler.engine._formats._format import ChatFormat
from paddler.engine._formats._gemma import GEMMA3
from paddler.engine._formats._harmony import CHANNEL, HARMONY
from paddler.engine._formats._hermes import GENERIC, HERMES, THINK_OPEN, TOOL_OPEN
from paddler.engine._formats._llama3 import LLAMA3, PYTHON_TAG
from paddler.engine._formats._mistral import MISTRAL, TOOL_CALLS
from paddler.engine._formats._mistral import THINK_OPEN as MISTRAL_THINK

#: (format, template signatures, special tokens), most specific first: a DeepSeek distill
#: of Qwen still writes `<think>`, and gpt-oss's template mentions no other family.
_SIGNATURES: tuple[tuple[ChatFormat, tuple[str, ...], tuple[str, ...]], ...] = (
    (HARMONY, (CHANNEL,), (CHANNEL,)),
    (DEEPSEEK_R1, (CALLS_BEGIN, "<｜Assistant｜>"), (CALLS_BEGIN, "<｜Assistant｜>")),
    (MISTRAL, (TOOL_CALLS, MISTRAL_THINK, "[INST]"), (TOOL_CALLS, "[INST]")),
    (LLAMA3, (PYTHON_TAG, "<|start_header_id|>"), (PYTHON_TAG, "<|start_header_id|>")),
    (GEMMA3, ("<start_of_turn>",), ("<start_of_turn>",)),
    (HERMES, (TOOL_OPEN, THINK_OPEN), (TOOL_OPEN,)),
)

FORMATS: dict[str, ChatFormat] = {
    f.name: f for f in (HERMES, LLAMA3, MISTRAL, DEEPSEEK_R1, GEMMA3, HARMONY, GENERIC)
}


@attrs.frozen
class Detection:
    """The format picked and why (for logs and tests)."""

    format: ChatFormat
    reason: str


def detect_chat_format(
    template: str | None, is_special: Callable[[str], bool] = lambda _: False
) -> Detection:
    """The format for a chat template and a vocabulary (`is_special(text)`: one special token)."""
    if template:
        for chat_format, signatures, _ in _SIGNATURES:
            for signature in signatures:
                if signature in template:
                    return Detection(chat_format, f"the chat template writes {signature!r}")
    for chat_format, _, tokens in _SIGNATURES:
        for token in tokens:
            if is_special(token):
                return Detection(chat_format, f"the vocabulary has the special token {token!r}")
    return Detection(GENERIC, "no known family's markers in the template or vocabulary")
