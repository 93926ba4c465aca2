"""Generation on the real model: batching, limits, cancellation, cache reuse, sampling."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import attrs
import pytest
from engine_test_helpers import chat, collect, content, done

from paddler.engine import LlamaEngine
from paddler.wire import (
    ContentToken,
    ContinueFromRawPromptParams,
    InferenceParameters,
    SamplerError,
    SamplingOverrides,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

QUESTIONS = [
    "What is the capital of France?",
    "Name three colours.",
    "Write a haiku about the sea.",
    "How many legs does a spider have?",
]


@pytest.fixture(scope="module")
async def engine(model_path: Path) -> AsyncIterator[LlamaEngine]:
    async with await LlamaEngine.load(
        model_path,
        attrs.evolve(InferenceParameters.deterministic(), context_size=4096, n_batch=512),
        slots=4,
    ) as engine:
        yield engine


async def test_four_concurrent_requests_match_each_alone(engine: LlamaEngine) -> None:
    """Continuous batching does not change what a request generates (deterministic preset)."""
    alone = [
        content(await collect(engine.generate(chat(("user", q), max_tokens=20)))) for q in QUESTIONS
    ]
    together: dict[int, str] = {}

    async def run(i: int) -> None:
        params = chat(("user", QUESTIONS[i]), max_tokens=20)
        together[i] = content(await collect(engine.generate(params)))

    async with anyio.create_task_group() as tg:
        for i in range(len(QUESTIONS)):
            tg.start_soon(run, i)
    assert [together[i] for i in range(len(QUESTIONS))] == alone
    assert all(alone)


async def test_max_tokens_is_exact(engine: LlamaEngine) -> None:
    """A request that would go on for longer stops after exactly `max_tokens` tokens."""
    results = await collect(engine.generate(chat(("user", "Tell me a long story."), max_tokens=7)))
    usage = done(results).usage
    assert usage.content_tokens == 7
    assert usage.prompt_tokens > 0


async def test_negative_max_tokens_stops_at_once(engine: LlamaEngine) -> None:
    results = await collect(engine.generate(chat(("user", "Hi"), max_tokens=-1)))
    assert len(results) == 1
    assert done(results).usage.content_tokens == 0


async def test_cancel_ends_with_usage_and_frees_the_slot(engine: LlamaEngine) -> None:
    """Cancelling mid-generation ends the stream with `Done` and the slot is free again."""
    stream = engine.generate(chat(("user", "Count from one to a thousand."), max_tokens=2000))
    seen: list[object] = []
    with anyio.fail_after(30):
        async for result in stream:
            seen.append(result)
            if len(seen) == 3:
                assert engine.statistics().slots_busy == 1
                await stream.cancel()
    usage = done(seen).usage  # type: ignore[arg-type]
    assert 3 <= usage.content_tokens < 2000
    assert engine.statistics().slots_busy == 0


async def test_abandoned_stream_frees_the_slot(engine: LlamaEngine) -> None:
    """A consumer that goes away (closes its stream) cancels its request."""
    stream = engine.generate(chat(("user", "Count from one to a thousand."), max_tokens=2000))
    async with stream:
        async for _ in stream:
            break
    with anyio.fail_after(10):
        await engine.wait_idle()
    assert engine.statistics().slots_busy == 0


async def test_dropped_stream_frees_the_slot(engine: LlamaEngine) -> None:
    """A consumer that just drops its stream (no close) cancels its request too."""
    stream = engine.generate(chat(("user", "Count from one to a thousand."), max_tokens=2000))
    async for _ in stream:
        break
    del stream
    gc.collect()
    with anyio.fail_after(10):
        await engine.wait_idle()


async def test_multi_turn_conversation_reuses_the_cache(engine: LlamaEngine) -> None:
    """The second turn's prompt extends the first: most of it comes from the slot's KV cache."""
    first_turn = chat(("system", "You are terse."), ("user", "Say hello to Ada."))
    first = await collect(engine.generate(first_turn))
    answer = content(first)
    second_turn = chat(
        ("system", "You are terse."),
        ("user", "Say hello to Ada."),
        ("assistant", answer),
        ("user", "Now say goodbye."),
    )
    second = await collect(engine.generate(second_turn))
    usage = done(second).usage
    assert usage.cached_prompt_tokens >= done(first).usage.prompt_tokens - 1
    assert usage.cached_prompt_tokens < usage.prompt_tokens
    assert engine.statistics().cached_prompt_tokens >= usage.cached_prompt_tokens


async def test_output_with_and_without_cache_reuse_is_identical(model_path: Path) -> None:
    """A fresh engine (no cache) and a warm one produce the same text for the same prompt."""
    params = attrs.evolve(InferenceParameters.deterministic(), context_size=1024, n_batch=256)
    prompt = chat(("user", "What is two plus two?"), max_tokens=24)
    async with await LlamaEngine.load(model_path, params, slots=1) as engine:
        cold = await collect(engine.generate(prompt))
        warm = await collect(engine.generate(prompt))
    async with await LlamaEngine.load(model_path, params, slots=1, prompt_cache=False) as engine:
        await collect(engine.generate(prompt))
        uncached = await collect(engine.generate(prompt))
    assert done(cold).usage.cached_prompt_tokens == 0
    assert done(warm).usage.cached_prompt_tokens == done(warm).usage.prompt_tokens - 1
    assert done(uncached).usage.cached_prompt_tokens == 0
    assert content(warm) == content(cold) == content(uncached)


async def test_prompts_longer_than_n_batch_are_ingested_in_chunks(
    engine: LlamaEngine, model_path: Path
) -> None:
    """A 32-token batch ingests a long prompt over several steps, next to a generating slot."""
    question = "Summarise this: " + "The quick brown fox jumps over the lazy dog. " * 12
    params = chat(("user", question), max_tokens=16)
    reference = content(await collect(engine.generate(params)))
    small = attrs.evolve(InferenceParameters.deterministic(), context_size=1024, n_batch=32)
    async with await LlamaEngine.load(model_path, small, slots=2) as chunked:
        other = chunked.generate(chat(("user", "Count to fifty."), max_tokens=60))
        results = await collect(chunked.generate(params))
        await collect(other)
    assert done(results).usage.prompt_tokens > 100
    assert content(results) == reference


async def test_stop_string_ends_generation_without_emitting_it(engine: LlamaEngine) -> None:
    params = chat(("user", QUESTIONS[1]), max_tokens=24)
    full = content(await collect(engine.generate(params)))
    assert len(full) > 6
    stop = full[3:6]
    results = await collect(engine.generate(params, overrides=SamplingOverrides(stop=[stop])))
    assert content(results) == full[: full.index(stop)]
    done(results)


async def test_seed_makes_sampling_reproducible(model_path: Path) -> None:
    """With the default (random) sampler chain, the same seed gives the same text."""
    params = chat(("user", "Invent a name for a cat."), max_tokens=24)
    overrides = SamplingOverrides(temperature=1.2, top_p=0.95, seed=1234)
    defaults = attrs.evolve(InferenceParameters(), context_size=1024, n_batch=256)
    async with await LlamaEngine.load(model_path, defaults, slots=2) as engine:
        first = content(await collect(engine.generate(params, overrides=overrides)))
        second = content(await collect(engine.generate(params, overrides=overrides)))
        others = {
            content(
                await collect(engine.generate(params, overrides=attrs.evolve(overrides, seed=s)))
            )
            for s in (1, 2, 3)
        }
    assert first == second
    assert len(others | {first}) > 1


async def test_raw_prompt_skips_the_template(engine: LlamaEngine) -> None:
    raw = "<|im_start|>user\nSay yes.<|im_end|>\n<|im_start|>assistant\n"
    results = await collect(
        engine.generate(ContinueFromRawPromptParams(raw_prompt=raw, max_tokens=8))
    )
    assert done(results).usage.prompt_tokens < 20  # no default system prompt was added
    assert any(isinstance(r, ContentToken) for r in results)


async def test_more_requests_than_slots_get_an_error_not_a_hang(model_path: Path) -> None:
    params = attrs.evolve(InferenceParameters.deterministic(), context_size=512, n_batch=128)
    async with await LlamaEngine.load(model_path, params, slots=1) as engine:
        first = engine.generate(chat(("user", "Count to fifty."), max_tokens=200))
        async for _ in first:
            break
        second = await collect(engine.generate(chat(("user", "Hi"))))
        assert isinstance(second[-1], SamplerError)
        await first.cancel()
        await collect(first)
        done(await collect(engine.generate(chat(("user", "Hi")))))
