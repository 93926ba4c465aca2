"""Loading reports progress and can be cancelled."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from paddler.engine import LlamaEngine
from paddler.wire import ContinueFromRawPromptParams, Done, InferenceParameters

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
