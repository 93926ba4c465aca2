"""Loading: progress, cancellation, and the load errors."""

from __future__ import annotations

from pathlib import Path

import anyio
import attrs
import pytest

from paddler.engine import LlamaEngine
from paddler.engine._errors import UnableToFindChatTemplate
from paddler.wire import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    ConversationMessage,
    Done,
    InferenceParameters,
    PoolingType,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]


async def test_load_reports_progress_up_to_one(model_path: Path) -> None:
    seen: list[float] = []
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=2, on_progress=seen.append
    ) as engine:
        assert engine.slots_total == 2
        assert engine.metadata["general.architecture"] == "llama"
        assert engine.model_chat_template
        assert repr(engine) == "<LlamaEngine [slots: 0/2 busy]>"
    assert seen
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


async def test_load_can_be_cancelled(model_path: Path) -> None:
    """Cancelling the caller's scope during the load aborts it (llama.cpp's progress says stop)."""
    seen: list[float] = []
    with anyio.CancelScope() as scope:

        def on_progress(value: float) -> None:
            seen.append(value)
            scope.cancel()

        await LlamaEngine.load(
            model_path, InferenceParameters.deterministic(), slots=1, on_progress=on_progress
        )
        pytest.fail("load returned although it was cancelled")
    assert scope.cancelled_caught
    assert seen and seen[-1] < 1.0


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_engine_works_on_trio(model_path: Path, anyio_backend: str) -> None:
    """The engine only uses anyio: load, generate and close on trio too."""
    params = ContinueFromRawPromptParams(raw_prompt="1, 2, 3,", max_tokens=5)
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1
    ) as engine:
        results = [r async for r in engine.generate(params)]
    assert isinstance(results[-1], Done)
    assert results[-1].usage.content_tokens == 5


@pytest.fixture(scope="module")
def model_without_template(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the model whose `tokenizer.chat_template` key is renamed (same length)."""
    data = model_path.read_bytes()
    key = b"tokenizer.chat_template"
    assert data.count(key) == 1
    path = tmp_path_factory.mktemp("gguf") / "no-template.gguf"
    path.write_bytes(data.replace(key, b"tokenizer.chat_templatX"))
    return path


async def test_missing_chat_template_fails_the_load(model_without_template: Path) -> None:
    with pytest.raises(UnableToFindChatTemplate):
        await LlamaEngine.load(model_without_template, InferenceParameters.deterministic(), slots=1)


async def test_embeddings_mode_needs_no_chat_template(model_without_template: Path) -> None:
    params = attrs.evolve(
        InferenceParameters.deterministic(), enable_embeddings=True, pooling_type=PoolingType.MEAN
    )
    async with await LlamaEngine.load(model_without_template, params, slots=1) as engine:
        assert engine.model_chat_template is None


async def test_an_override_stands_in_for_a_missing_template(model_without_template: Path) -> None:
    template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    async with await LlamaEngine.load(
        model_without_template,
        InferenceParameters.deterministic(),
        slots=1,
        chat_template_override=template,
    ) as engine:
        params = ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=(ConversationMessage(role="user", content="1, 2, 3,"),),
            enable_thinking=False,
            max_tokens=3,
        )
        results = [r async for r in engine.generate(params)]
    assert isinstance(results[-1], Done)
    assert results[-1].usage.prompt_tokens < 12  # just the message: the override was used
