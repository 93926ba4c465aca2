"""A small context: the longest sequence is evicted with its error and the others finish."""

from __future__ import annotations

from pathlib import Path

import anyio
import attrs
import pytest
from engine_test_helpers import collect, content, done

from paddler.engine import LlamaEngine
from paddler.wire import (
    ContinueFromRawPromptParams,
    GeneratedTokenResult,
    InferenceParameters,
    SamplerError,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


async def test_longest_sequence_is_evicted_and_others_finish(model_path: Path) -> None:
    params = attrs.evolve(InferenceParameters.deterministic(), context_size=256, n_batch=64)
    async with await LlamaEngine.load(model_path, params, slots=2) as engine:
        results: dict[str, list[GeneratedTokenResult]] = {}

        async def run(name: str, max_tokens: int) -> None:
            stream = engine.generate(
                ContinueFromRawPromptParams(raw_prompt=COUNTING, max_tokens=max_tokens)
            )
            results[name] = await collect(stream)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "long", 2000)
            tg.start_soon(run, "short", 40)
        evicted = results["long"][-1]
        assert isinstance(evicted, SamplerError)
        assert evicted.message == "Request evicted due to KV cache pressure"
        assert content(results["long"])  # it generated until the cache was full
        assert done(results["short"]).usage.content_tokens == 40
        stats = engine.statistics()
        assert stats.evictions == 1
        assert stats.slots_busy == 0
        # the engine keeps serving, with the same output as before
        again = await collect(
            engine.generate(ContinueFromRawPromptParams(raw_prompt=COUNTING, max_tokens=40))
        )
        assert content(again) == content(results["short"])
