"""The scheduler's step (batch → decode → sample → emit) against a fake llama context.

Only the public surface is driven: commands go in with `send`, `run_once` runs one turn of the
loop, and what the scheduler did shows in the batches the fake decoded and in the results.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from paddler.engine import Cancel, LoadedModel, Outbox, Scheduler, Submit
from paddler.engine._llama import Batch
from paddler.engine._scheduler import EVICTED
from paddler.wire import (
    ContentToken,
    ContinueFromRawPromptParams,
    Done,
    InferenceParameters,
    SamplerError,
)

N_VOCAB = 16
EOG = 15


class FakeModel:
    """Each character of a prompt is a token; token t's text is chr(ord('a') + t)."""

    n_vocab = N_VOCAB
    bos = 0
    eos = EOG
    adds_bos = False

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        return [ord(c) % 10 + 1 for c in text]

    def piece(self, token: int) -> bytes:
        return chr(ord("a") + token).encode()

    def is_eog(self, token: int) -> bool:
        return token == EOG


class FakeContext:
    """Records every batch; the next token is always (position % 10) + 1; decode can fail."""

    def __init__(
        self, n_batch: int = 8, cells_per_seq: int = 1000, kv_unified: bool = False
    ) -> None:
        self.n_batch = n_batch
        self.kv_unified = kv_unified
        self.n_ctx = self.n_ctx_seq = 4096
        self.n_vocab = N_VOCAB
        self.cells_per_seq = cells_per_seq
        self.batches: list[list[tuple[int, int, int, bool]]] = []  # (seq, pos, token, output)
        self.fail_with: list[int] = []
        self.removed: list[tuple[int, int]] = []
        self._rows: list[int] = []
        self.scheduler: Scheduler | None = None

    def decode(self, batch: Batch) -> int:
        entries = batch.entries()
        n = len(entries)
        if self.fail_with:
            return self.fail_with.pop(0)
        if any(pos >= self.cells_per_seq for _, pos, _, _ in entries):
            return 1
        if self.kv_unified and self.cells_used() + n > self.cells_per_seq:
            return 1
        self.batches.append(entries)
        self._rows = [pos for _, pos, _, out in entries if out]
        return 0

    def logits(self, n_outputs: int) -> np.ndarray[Any, Any]:
        out = np.zeros((n_outputs, N_VOCAB), dtype=np.float32)
        for row, pos in enumerate(self._rows):
            out[row, (pos % 10) + 1] = 1.0
        return out

    def seq_remove(self, seq_id: int, start: int = 0) -> None:
        self.removed.append((seq_id, start))

    def cells_used(self) -> int:
        assert self.scheduler is not None
        return sum(len(slot.cached) for slot in self.scheduler.slots)


def make(slots: int = 2, **ctx_args: Any) -> tuple[Scheduler, FakeContext, Outbox]:
    ctx = FakeContext(**ctx_args)
    model = FakeModel()
    delivered: Outbox = []
    loaded = LoadedModel(model=model, ctx=ctx, template=None, metadata={})  # type: ignore[arg-type]
    scheduler = ctx.scheduler = Scheduler(
        loaded, InferenceParameters.deterministic(), slots=slots, deliver=delivered.extend
    )
    return scheduler, ctx, delivered


def submit(scheduler: Scheduler, request_id: int, prompt: str, max_tokens: int) -> None:
    params = ContinueFromRawPromptParams(raw_prompt=prompt, max_tokens=max_tokens)
    scheduler.send(Submit(request_id, params))


def results(delivered: Outbox, request_id: int) -> list[Any]:
    return [r for rid, items, _ in delivered for r in items if rid == request_id]


def run_until_idle(scheduler: Scheduler, limit: int = 100) -> None:
    """Turns of the loop until every slot is free (the first one takes what was sent)."""
    scheduler.run_once()
    for _ in range(limit):
        if not any(s.busy for s in scheduler.slots):
            return
        scheduler.run_once()
    raise AssertionError(f"still busy after {limit} steps: {scheduler.slots}")


def test_batches_mix_generation_and_prompt_chunks_in_sequence_order() -> None:
    scheduler, ctx, delivered = make(slots=2, n_batch=8)
    submit(scheduler, 1, "abc", max_tokens=5)
    scheduler.run_once()  # request 1's prompt, with one output at its last token
    submit(scheduler, 2, "abcdefghij", max_tokens=2)  # ten tokens: more than the batch has left
    scheduler.run_once()
    seqs = [seq for seq, _, _, _ in ctx.batches[1]]
    assert seqs == sorted(seqs)
    assert seqs.count(0) == 1  # request 1's pending token
    assert seqs.count(1) == 7  # the rest of n_batch goes to request 2's prompt chunk
    assert not ctx.batches[1][-1][3]  # a chunk that does not end the prompt asks for no logits
    run_until_idle(scheduler)
    assert isinstance(results(delivered, 1)[-1], Done)
    assert results(delivered, 1)[-1].usage.content_tokens == 5
    assert results(delivered, 2)[-1].usage.content_tokens == 2


def test_eviction_ends_the_longest_sequence_and_the_rest_finishes() -> None:
    scheduler, ctx, delivered = make(slots=2, n_batch=64, cells_per_seq=12)
    submit(scheduler, 1, "abcdefgh", max_tokens=50)
    submit(scheduler, 2, "ab", max_tokens=5)
    run_until_idle(scheduler)
    assert results(delivered, 1)[-1] == SamplerError(EVICTED)
    assert [r for r in results(delivered, 1) if isinstance(r, ContentToken)]
    assert results(delivered, 2)[-1].usage.content_tokens == 5
    assert (0, 0) in ctx.removed  # the evicted sequence's cache is dropped
    assert scheduler.counters.evictions == 1
    assert scheduler.counters.slots_busy == 0
    assert scheduler.slots[0].cached == []


def test_decode_errors_end_the_batch_requests_and_free_their_slots() -> None:
    scheduler, ctx, delivered = make(slots=2)
    ctx.fail_with = [-3]
    submit(scheduler, 1, "abc", max_tokens=5)
    scheduler.run_once()
    assert results(delivered, 1) == [SamplerError("llama_decode failed (-3)")]
    assert scheduler.counters.slots_busy == 0
    submit(scheduler, 2, "abc", max_tokens=2)
    run_until_idle(scheduler)
    assert isinstance(results(delivered, 2)[-1], Done)


def test_cancel_ends_with_usage_so_far_and_keeps_the_cache() -> None:
    scheduler, _, delivered = make(slots=1)
    submit(scheduler, 1, "abc", max_tokens=100)
    for _ in range(4):
        scheduler.run_once()
    scheduler.send(Cancel(1))
    scheduler.run_once()
    done = results(delivered, 1)[-1]
    assert isinstance(done, Done)
    assert done.usage.content_tokens == 4
    assert len(scheduler.slots[0].cached) == 3 + 3  # prompt + the tokens decoded so far
    submit(scheduler, 2, "abc", max_tokens=1)
    run_until_idle(scheduler)
    again = results(delivered, 2)[-1]
    assert isinstance(again, Done)
    assert again.usage.cached_prompt_tokens == 2  # the last prompt token is re-decoded


def test_no_free_slot_is_an_immediate_error() -> None:
    scheduler, _, delivered = make(slots=1)
    submit(scheduler, 1, "abc", max_tokens=10)
    submit(scheduler, 2, "abc", max_tokens=10)
    scheduler.run_once()
    assert results(delivered, 2) == [SamplerError("There are no available sequence slots")]


def test_with_a_shared_kv_stream_idle_caches_go_before_requests() -> None:
    scheduler, ctx, delivered = make(slots=2, n_batch=64, cells_per_seq=16, kv_unified=True)
    submit(scheduler, 1, "abcdefgh", max_tokens=4)
    run_until_idle(scheduler)
    assert len(scheduler.slots[0].cached) == 11  # kept after the request
    submit(scheduler, 2, "hgfedcb", max_tokens=6)
    run_until_idle(scheduler)
    assert results(delivered, 2)[-1].usage.content_tokens == 6
    assert scheduler.counters.evictions == 0
    assert scheduler.slots[0].cached == []
    assert (0, 0) in ctx.removed


def test_run_blocking_serves_commands_sent_from_another_thread() -> None:
    """Library use: the loop runs on its own thread, `send` and `stop` come from this one."""
    ctx = FakeContext()
    ended = threading.Event()
    delivered: Outbox = []

    def deliver(outbox: Outbox) -> None:
        delivered.extend(outbox)
        if any(last for _, _, last in outbox):
            ended.set()

    loaded = LoadedModel(model=FakeModel(), ctx=ctx, template=None, metadata={})  # type: ignore[arg-type]
    scheduler = ctx.scheduler = Scheduler(
        loaded, InferenceParameters.deterministic(), slots=1, deliver=deliver
    )
    thread = threading.Thread(target=scheduler.run_blocking)
    thread.start()
    try:
        submit(scheduler, 1, "abc", max_tokens=3)
        assert ended.wait(30)
    finally:
        scheduler.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert results(delivered, 1)[-1].usage.content_tokens == 3
    assert scheduler.counters.requests_completed == 1
