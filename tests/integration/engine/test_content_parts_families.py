"""OpenAI content parts reach the model through real families' chat templates.

The demo model is loaded with a string-concatenating template (Llama 3.1, which would print the
list's repr) and a part-reading one (Gemma 3) as the override: the prompt a content-part
conversation renders to is the one its plain-string twin renders to, so the deterministic
output is the same token for token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from engine_test_helpers import collect, content, done

from paddler.engine import LlamaEngine
from paddler.wire import (
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    InferenceParameters,
    TextPart,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

TEMPLATES = Path(__file__).parents[2] / "unit" / "engine" / "chat_templates"


def conversation(*, as_parts: bool) -> ContinueFromConversationHistoryParams:
    def body(text: str) -> str | tuple[TextPart, ...]:
        return (TextPart(text),) if as_parts else text

    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(
            ConversationMessage(role="user", content=body("Name a fruit.")),
            ConversationMessage(role="assistant", content=body("Apple.")),
            ConversationMessage(role="user", content=body("Name another one.")),
        ),
        enable_thinking=False,
        max_tokens=4,
    )


@pytest.fixture(scope="module", params=["llama3.1", "gemma3"])
async def engine(request: pytest.FixtureRequest, model_path: Path) -> AsyncIterator[LlamaEngine]:
    parameters = attrs.evolve(InferenceParameters.deterministic(), context_size=512, n_batch=512)
    source = (TEMPLATES / f"{request.param}.jinja").read_text()
    engine = await LlamaEngine.load(model_path, parameters, slots=1, chat_template_override=source)
    async with engine:
        yield engine


async def test_content_parts_generate_what_plain_strings_generate(engine: LlamaEngine) -> None:
    """No ChatTemplateError, and the same deterministic answer as the string form."""
    from_parts = await collect(engine.generate(conversation(as_parts=True)))
    from_strings = await collect(engine.generate(conversation(as_parts=False)))
    assert done(from_parts).usage.prompt_tokens == done(from_strings).usage.prompt_tokens
    assert content(from_parts) == content(from_strings)
    assert content(from_parts)
