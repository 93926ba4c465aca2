"""Continuous batching on one thread: build one batch, decode once, sample, emit.

Every generating slot contributes its pending token and ingesting slots fill the rest of
`n_batch` with prompt chunks, in ascending `seq_id` order (llama.cpp splits unordered batches).
An image in a prompt is evaluated on its own before a step's batch (a llama batch carries
either tokens or embeddings, not both): at most one image per step, so the other slots keep
generating between images, and the image's text before and after it rides the shared batches.
The outputs of a whole step leave in one `deliver` call. The engine worker runs this loop on its
process's initial thread (llama.cpp with OpenMP is ~3x slower from any other thread), taking
commands from its pipe; `QueueCommands` feeds it from other threads for library use and tests.

`LlamaEngine` is this loop in a worker process. To run it in your own process instead, load a
model with `load_model`, build `Scheduler(loaded, parameters, slots=..., deliver=...)`, `send`
it commands and call `run_blocking()` (or `run_once()` per step) on one thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs
import numpy as np

from paddler.engine._embeddings import run_embeddings
from paddler.engine._llama import Batch
from paddler.engine._loading import LoadedModel
from paddler.engine._prepare import GenerationParams, PrepareContext, prepare
from paddler.engine._request import ActiveRequest
from paddler.engine._sampling import GrammarRejected
from paddler.engine._slot import Slot, SlotState, pick_slot
from paddler.wire import (
    EmbeddingError,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingResult,
    EmbeddingsDisabled,
    GeneratedTokenResult,
    GenerateEmbeddingBatchParams,
    GrammarRejectedModelOutput,
    InferenceParameters,
    SamplerError,
    SamplingOverrides,
)

logger = logging.getLogger("paddler.engine")

EVICTED = "Request evicted due to KV cache pressure"

Result = GeneratedTokenResult | EmbeddingResult
# (request id, results, whether the last one ends the stream)
Outbox = list[tuple[int, Sequence[Result], bool]]


@attrs.frozen
class Submit:
    """Start a generation; its results are delivered under `request_id`, the last one terminal."""

    request_id: int
    params: GenerationParams
    overrides: SamplingOverrides | None = None
    #: The answer's start, streamed by an agent that was lost (see ``prepare``).
    continuation: str | None = None


@attrs.frozen
class Embed:
    """Embed a batch of documents (refused while any generation is active)."""

    request_id: int
    params: GenerateEmbeddingBatchParams


@attrs.frozen
class Cancel:
    """End a request now; it finishes with `Done` and the usage so far."""

    request_id: int


@attrs.frozen
class Stop:
    """End the loop after this step (results already queued are still delivered)."""


Command = Submit | Embed | Cancel | Stop


class CommandSource(Protocol):
    """Where the scheduler's commands come from (a queue, or the engine worker's pipe)."""

    def take(self, timeout: float) -> list[Command]:
        """The commands waiting now; with nothing waiting, wait up to `timeout` seconds."""
        ...


class QueueCommands:
    """Commands put from any thread (in-process use and tests)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def put(self, command: Command) -> None:
        self._queue.put(command)

    def take(self, timeout: float) -> list[Command]:
        try:
            first = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return []
        commands = [first]
        while True:
            try:
                commands.append(self._queue.get_nowait())
            except queue.Empty:
                return commands


@attrs.define
class SchedulerCounters:
    """Written by the scheduler thread only; read (racily but harmlessly) by statistics()."""

    slots_busy: int = 0
    requests_completed: int = 0
    tokens_generated: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    input_image_tokens: int = 0
    evictions: int = 0
    steps: int = 0
    step_seconds: float = 0.0
    decode_seconds: float = 0.0


class Scheduler:
    """Continuous batching over `slots` sequences of one loaded model, on the calling thread.

    It owns the slots and the llama context once started. Each step's results leave in one
    `deliver(outbox)` call (on the scheduler's thread): `(request_id, results, ended)` tuples.
    Commands come from `commands` (a `CommandSource`), or, without one, from `send()`, which
    any thread may call. `slots` (the `Slot`s) and `counters` are for reading between steps.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        parameters: InferenceParameters,
        *,
        slots: int,
        deliver: Callable[[Outbox], None],
        prompt_cache: bool = True,
        commands: CommandSource | None = None,
    ) -> None:
        self.model = loaded.model
        self.ctx = ctx = loaded.ctx
        self.slots = [Slot(seq_id=i) for i in range(slots)]
        self.counters = SchedulerCounters()
        self._prepare_context = PrepareContext(
            model=loaded.model,
            template=loaded.template,
            parameters=parameters,
            n_ctx=ctx.n_ctx,
            n_ctx_seq=ctx.n_ctx_seq,
            projector=loaded.projector,
        )
        self._embeddings_enabled = parameters.enable_embeddings
        self._pooling = parameters.pooling_type
        self._deliver = deliver
        self._prompt_cache = prompt_cache
        self._projector = loaded.projector
        self._batch = Batch(ctx.n_batch)
        self._queue: QueueCommands | None = None
        if commands is None:
            self._queue = commands = QueueCommands()
        self._commands: CommandSource = commands
        self._stop = threading.Event()
        self._outbox: Outbox = []
        self._by_id: dict[int, Slot] = {}
        self._last_image_slot = -1

    # -- called from any thread (only when the scheduler owns its command queue) ------------
    def send(self, command: Command) -> None:
        """Queue a command for the next step (not for a scheduler given a `CommandSource`)."""
        if self._queue is None:
            raise RuntimeError("This scheduler takes its commands from a CommandSource.")
        self._queue.put(command)

    def stop(self) -> None:
        """End `run_blocking` after the current step."""
        self._stop.set()
        if self._queue is not None:
            self._queue.put(Stop())

    # -- the thread ------------------------------------------------------------------------
    def run_blocking(self) -> None:
        """Run steps until `stop()` (or a `Stop` command); frees the batch at the end."""
        try:
            while not self._stop.is_set():
                self.run_once(block=True)
        except Exception:
            logger.exception("scheduler crashed")
            raise
        finally:
            self._batch.free()

    def run_once(self, *, block: bool = False) -> None:
        """One turn of the loop: take the waiting commands, run one step if a slot is busy,
        and deliver what came out. With ``block`` and nothing to do, it first waits (up to
        half a second) for a command."""
        self._take_commands(block=block and not any(s.busy for s in self.slots))
        if self._stop.is_set() or not any(s.busy for s in self.slots):
            self._flush()
            return
        started = time.perf_counter()
        try:
            decode_seconds = self._step()
        except Exception as exc:  # never leave a slot counted as busy
            logger.exception("scheduler step failed")
            decode_seconds = None
            for slot in self.slots:
                if slot.request is not None:
                    self._release(slot, SamplerError(str(exc)), drop_cache=True)
        self._flush()
        if decode_seconds is not None:  # a whole step: batch, decode, sample, deliver
            self.counters.steps += 1
            self.counters.decode_seconds += decode_seconds
            self.counters.step_seconds += time.perf_counter() - started

    def _flush(self) -> None:
        if self._outbox:
            outbox, self._outbox = self._outbox, []
            self._deliver(outbox)

    def _take_commands(self, *, block: bool) -> None:
        for command in self._commands.take(0.5 if block else 0.0):
            self._handle(command)

    def _handle(self, command: Command) -> None:
        try:
            self._dispatch(command)
        except Exception as exc:
            logger.exception("failed to handle %r", command)
            if isinstance(command, Submit):
                self._outbox.append((command.request_id, [SamplerError(str(exc))], True))
            elif isinstance(command, Embed):
                self._outbox.append((command.request_id, [EmbeddingError(str(exc))], True))

    def _dispatch(self, command: Command) -> None:
        if isinstance(command, Stop):
            self._stop.set()
        elif isinstance(command, Submit):
            self._accept(command)
        elif isinstance(command, Cancel):
            slot = self._by_id.get(command.request_id)
            if slot is not None and slot.request is not None:
                self._release(slot, None)
        elif isinstance(command, Embed):
            self._embed(command)

    def _accept(self, command: Submit) -> None:
        prepared = prepare(
            command.request_id,
            command.params,
            command.overrides,
            self._prepare_context,
            continuation=command.continuation,
        )
        if not isinstance(prepared, ActiveRequest):
            self._outbox.append((command.request_id, [prepared], True))
            return
        request = prepared
        self.counters.prompt_tokens += request.prompt_tokens
        self.counters.input_image_tokens += request.input_image_tokens
        if not request.prompt:
            request.finish(SamplerError("The prompt is empty"))
            self._outbox.append((request.id, request.outputs, True))
            return
        if request.budget_exhausted():  # max_tokens <= 0, or a continuation used it up
            request.finish()
            self._outbox.append((request.id, request.outputs, True))
            return
        picked = pick_slot(self.slots, request.prompt)
        if picked is None:
            request.finish(SamplerError("There are no available sequence slots"))
            self._outbox.append((request.id, request.outputs, True))
            return
        slot, prefix = picked
        # always decode the last prompt token: its logits start the generation
        reuse = min(prefix, len(request.prompt) - 1) if self._prompt_cache else 0
        if reuse < len(slot.cached):
            self.ctx.seq_remove(slot.seq_id, reuse)
            del slot.cached[reuse:]
        request.cached_prompt_tokens = reuse
        request.ingested = reuse
        self.counters.cached_prompt_tokens += reuse
        slot.request = request
        slot.state = SlotState.INGESTING
        self._by_id[request.id] = slot
        self.counters.slots_busy += 1

    def _release(
        self, slot: Slot, terminal: GeneratedTokenResult | None, *, drop_cache: bool = False
    ) -> None:
        """End the slot's request (queueing its last results) and free the slot."""
        request = slot.request
        assert request is not None
        request.finish(terminal)
        self._outbox.append((request.id, request.outputs, True))
        request.outputs = []
        self.counters.tokens_generated += request.generated_tokens
        self.counters.requests_completed += 1
        self.counters.slots_busy -= 1
        del self._by_id[request.id]
        slot.request = None
        slot.state = SlotState.IDLE
        if drop_cache:
            self.ctx.seq_remove(slot.seq_id, 0)
            slot.cached.clear()

    def _embed(self, command: Embed) -> None:
        if not self._embeddings_enabled:
            self._outbox.append((command.request_id, [EmbeddingsDisabled()], True))
            return
        if any(s.busy for s in self.slots):
            self._outbox.append(
                (command.request_id, [EmbeddingRejectedDueToActiveTokenGeneration()], True)
            )
            return
        for slot in self.slots:  # the embedding batches reuse every sequence
            slot.cached.clear()

        def emit(results: list[EmbeddingResult]) -> None:
            self._outbox.append((command.request_id, list(results), False))
            self._flush()

        terminal = run_embeddings(
            command.params,
            model=self.model,
            ctx=self.ctx,
            batch=self._batch,
            max_sequences=len(self.slots),
            pooling=self._pooling,
            emit=emit,
        )
        self._outbox.append((command.request_id, [terminal], True))

    # -- one step --------------------------------------------------------------------------
    def _step(self) -> float | None:
        """One batch; returns the seconds spent in `llama_decode` (None if nothing decoded)."""
        image_seconds = self._evaluate_an_image()
        batch = self._batch
        batch.clear()
        generating = sum(1 for s in self.slots if s.state is SlotState.GENERATING)
        budget = batch.capacity - generating
        entries: list[tuple[Slot, list[int], int]] = []  # slot, tokens added, output index or -1
        for slot in self.slots:
            request = slot.request
            if request is None:
                continue
            if slot.state is SlotState.GENERATING:
                tokens = [request.pending_token]
                index = batch.add(tokens, len(slot.cached), slot.seq_id, output_last=True)
                entries.append((slot, tokens, index))
            elif budget > 0:
                start = request.ingested
                end = request.text_end()
                if end <= start:
                    continue  # its image comes first (evaluated at the start of a step)
                tokens = request.prompt[start : min(end, start + budget)]
                last = start + len(tokens) == len(request.prompt)
                index = batch.add(tokens, start, slot.seq_id, output_last=last)
                entries.append((slot, tokens, index if last else -1))
                budget -= len(tokens)
        if not entries:
            return image_seconds
        decode_started = time.perf_counter()
        rc = self.ctx.decode(batch)
        decode_seconds = time.perf_counter() - decode_started + (image_seconds or 0.0)
        if rc == 1:
            if self._drop_an_idle_cache():
                return None  # retried next step with the freed cells
            victim = max(entries, key=lambda e: len(e[0].cached) + len(e[1]))[0]
            logger.info("KV cache full: evicting %r", victim)
            self.counters.evictions += 1
            self._release(victim, SamplerError(EVICTED), drop_cache=True)
            return None
        if rc != 0:
            logger.error("llama_decode failed with status %d", rc)
            for slot, _, _ in entries:
                self._release(slot, SamplerError(f"llama_decode failed ({rc})"), drop_cache=True)
            return None
        self._commit_and_sample(entries, batch.n_outputs)
        return decode_seconds

    def _evaluate_an_image(self) -> float | None:
        """Encode and decode the next image one ingesting slot has reached (the first such
        slot after the last one served, so two image requests take turns); its seconds."""
        waiting = [
            s
            for s in self.slots
            if s.state is SlotState.INGESTING and s.request and s.request.pending_image()
        ]
        if not waiting or self._projector is None:
            return None
        slot = min(waiting, key=lambda s: (s.seq_id <= self._last_image_slot, s.seq_id))
        self._last_image_slot = slot.seq_id
        request = slot.request
        assert request is not None
        span = request.pending_image()
        assert span is not None and span.start == len(slot.cached)
        started = time.perf_counter()
        error = self._projector.evaluate(
            self.ctx, span.chunk, position=span.start, seq_id=slot.seq_id, n_batch=self.ctx.n_batch
        )
        seconds = time.perf_counter() - started
        if error is not None:
            self.ctx.seq_remove(slot.seq_id, span.start)  # whatever part of it was decoded
            if self._drop_an_idle_cache():
                return seconds  # retried next step with the freed cells
            logger.warning("image evaluation failed for %r: %s", slot, error)
            self._release(slot, SamplerError(f"The image could not be evaluated: {error}"))
            return seconds
        request.image_evaluated()
        slot.cached.extend(request.prompt[span.start : span.end])
        return seconds

    def _drop_an_idle_cache(self) -> bool:
        """With one shared KV stream, idle slots' caches go before any request is evicted."""
        if not self.ctx.kv_unified:
            return False  # each sequence has its own cells: an idle cache takes nothing away
        idle = [s for s in self.slots if not s.busy and s.cached]
        if not idle:
            return False
        slot = max(idle, key=lambda s: len(s.cached))
        logger.info("KV cache full: dropping the prompt cache of %r", slot)
        self.ctx.seq_remove(slot.seq_id, 0)
        slot.cached.clear()
        return True

    def _commit_and_sample(
        self, entries: list[tuple[Slot, list[int], int]], n_outputs: int
    ) -> None:
        if n_outputs == 0:  # only prompt chunks that do not end their prompt
            for slot, tokens, _ in entries:
                slot.cached.extend(tokens)
                assert slot.request is not None
                slot.request.ingested += len(tokens)
            return
        logits = self.ctx.logits(n_outputs)
        sampled: list[tuple[Slot, int, int]] = []  # slot, batch index, output row
        row = 0
        for slot, tokens, index in entries:
            slot.cached.extend(tokens)
            request = slot.request
            assert request is not None
            if slot.state is SlotState.INGESTING:
                request.ingested += len(tokens)
            if index >= 0:
                sampled.append((slot, index, row))
                row += 1
        greedy = [(s, r) for s, _, r in sampled if s.request and s.request.sampler.greedy]
        tokens_by_slot: dict[int, int] = {}
        if greedy:
            rows = np.fromiter((r for _, r in greedy), dtype=np.intp, count=len(greedy))
            picks = np.argmax(logits[rows], axis=1)
            for (slot, _), token in zip(greedy, picks.tolist(), strict=True):
                tokens_by_slot[slot.seq_id] = token
        model = self.model
        for slot, index, r in sampled:
            request = slot.request
            assert request is not None
            token = tokens_by_slot.get(slot.seq_id)
            if token is None:
                try:
                    token = request.sampler.sample(self.ctx, index, logits[r])
                except GrammarRejected:
                    self._release(
                        slot,
                        GrammarRejectedModelOutput(
                            "The grammar rejected every token the model could produce"
                        ),
                    )
                    continue
            if request.accept_token(token, model):
                self._outbox.append((request.id, request.outputs, True))
                request.outputs = []
                self._finish_bookkeeping(slot)
                continue
            if request.outputs:
                self._outbox.append((request.id, request.outputs, False))
                request.outputs = []
            request.pending_token = token
            slot.state = SlotState.GENERATING

    def _finish_bookkeeping(self, slot: Slot) -> None:
        request = slot.request
        assert request is not None
        self.counters.tokens_generated += request.generated_tokens
        self.counters.requests_completed += 1
        self.counters.slots_busy -= 1
        del self._by_id[request.id]
        slot.request = None
        slot.state = SlotState.IDLE
