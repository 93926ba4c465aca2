"""Loading a multimodal projection (mmproj) beside the model, and the ways it can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from paddler.engine import LlamaEngine
from paddler.engine._errors import MultimodalProjectionCannotBeLoaded
from paddler.testing.make_projector import write_projector
from paddler.wire import InferenceParameters

pytestmark = [pytest.mark.model, pytest.mark.anyio]


async def test_engine_loads_the_projector(model_path: Path, projector_path: Path) -> None:
    async with await LlamaEngine.load(
        model_path,
        InferenceParameters.deterministic(),
        slots=1,
        multimodal_projection=projector_path,
    ) as engine:
        assert engine.multimodal is True


async def test_engine_without_projector_is_text_only(model_path: Path) -> None:
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1
    ) as engine:
        assert engine.multimodal is False


async def test_missing_projector_file(model_path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(MultimodalProjectionCannotBeLoaded, match="does not exist") as caught:
        await LlamaEngine.load(
            model_path, InferenceParameters.deterministic(), slots=1, multimodal_projection=missing
        )
    assert caught.value.path == str(missing)


async def test_garbage_projector_file(model_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "invalid_mmproj.gguf"
    bad.write_bytes(b"GGUF but not really" * 100)
    with pytest.raises(MultimodalProjectionCannotBeLoaded, match="could not load") as caught:
        await LlamaEngine.load(
            model_path, InferenceParameters.deterministic(), slots=1, multimodal_projection=bad
        )
    assert caught.value.path == str(bad)


async def test_projector_for_another_model(model_path: Path, tmp_path: Path) -> None:
    """A projector whose output width is not the model's embedding width is refused."""
    other = write_projector(tmp_path / "for-a-wider-model.gguf", text_embd=1024)
    with pytest.raises(MultimodalProjectionCannotBeLoaded):
        await LlamaEngine.load(
            model_path, InferenceParameters.deterministic(), slots=1, multimodal_projection=other
        )
