"""`LlamaEngine`: the anyio face of the scheduler thread (load, generate, embed, close)."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paddler.engine._errors import SlotCannotStart
from paddler.engine._llama import LlamaContext, LlamaModel
from paddler.engine._loading import LoadedModel, load_blocking
from paddler.engine._prepare import GenerationParams, PrepareContext
from paddler.engine._sampling import SamplingOverrides
from paddler.engine._scheduler import Cancel, Embed, Outbox, Result, Scheduler, Submit
from paddler.engine._stream import EmbeddingStream, EngineStatistics, GenerationStream, ResultStream
from paddler.engine._template import ChatTemplate
from paddler.wire import GenerateEmbeddingBatchParams, InferenceParameters

logger = logging.getLogger("paddler.engine")

STREAM_BUFFER = 8192


class LlamaEngine:
    """One model, one context with `slots` sequences, one scheduler thread."""

    def __init__(
        self,
        *,
        model: LlamaModel,
        ctx: LlamaContext,
        parameters: InferenceParameters,
        slots: int,
        template: ChatTemplate | None,
        metadata: dict[str, str],
        token: anyio.lowlevel.EventLoopToken,
        prompt_cache: bool = True,
    ) -> None:
        self.parameters = parameters
        self.metadata = metadata
        self.model_chat_template: str | None = metadata.get("tokenizer.chat_template")
        self.slots_total = slots
        self._model = model
        self._ctx = ctx
        self._token = token
        self._ids = itertools.count(1)
        self._streams: dict[int, MemoryObjectSendStream[Result]] = {}
        self._closed = False
        self._idle_waiters: list[anyio.Event] = []
        self._scheduler = Scheduler(
            model=model,
            ctx=ctx,
            prepare_context=PrepareContext(
                model=model, template=template, parameters=parameters, n_ctx=ctx.n_ctx
            ),
            slots=slots,
            embeddings_enabled=parameters.enable_embeddings,
            pooling=parameters.pooling_type,
            deliver=self._deliver_from_thread,
            prompt_cache=prompt_cache,
        )
        self._thread = threading.Thread(
            target=self._scheduler.run_blocking, name="paddler-scheduler", daemon=True
        )
        self._thread.start()

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    async def load(
        cls,
        model_path: str | os.PathLike[str],
        parameters: InferenceParameters,
        *,
        slots: int,
        chat_template_override: str | None = None,
        on_progress: Callable[[float], None] | None = None,
        prompt_cache: bool = True,
    ) -> LlamaEngine:
        """Load on a worker thread; cancelling the caller's scope aborts the load.

        `prompt_cache=False` clears a slot's KV for every request, as Paddler does.
        """
        token = anyio.lowlevel.current_token()
        cancelled = threading.Event()
        last = [-1.0]

        def progress(value: float) -> bool:
            if cancelled.is_set():
                return False
            if on_progress is not None and (value >= 1.0 or value - last[0] >= 0.01):
                last[0] = value
                anyio.from_thread.run_sync(on_progress, value, token=token)
            return not cancelled.is_set()

        def work() -> LlamaEngine | None:
            if slots < 1 or slots > parameters.n_batch:
                raise SlotCannotStart(f"slots must be between 1 and n_batch, got {slots}")
            loaded: LoadedModel | None = load_blocking(
                Path(model_path),
                parameters,
                slots=slots,
                template_override=chat_template_override,
                progress=progress,
                cancelled=cancelled,
            )
            if loaded is None:
                return None
            return cls(
                model=loaded.model,
                ctx=loaded.ctx,
                parameters=parameters,
                slots=slots,
                template=loaded.template,
                metadata=loaded.metadata,
                token=token,
                prompt_cache=prompt_cache,
            )

        finished = False

        async def watch() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                if not finished:
                    cancelled.set()

        engine: LlamaEngine | None = None
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            try:
                engine = await anyio.to_thread.run_sync(work)
            except Exception as exc:  # raised below, not wrapped in an exception group
                error = exc
            finally:
                finished = True
                tg.cancel_scope.cancel()
        if error is not None:
            raise error
        if cancelled.is_set() or engine is None:  # our scope was cancelled during the load
            if engine is not None:
                await engine.aclose()
            await anyio.lowlevel.checkpoint()
            raise anyio.get_cancelled_exc_class()()
        return engine

    # -- requests --------------------------------------------------------------------------
    def generate(
        self, params: GenerationParams, *, overrides: SamplingOverrides | None = None
    ) -> GenerationStream:
        """Start a generation request; iterate the returned stream for its results."""
        request_id, receive = self._open()
        self._scheduler.send(Submit(request_id, params, overrides))
        return ResultStream(request_id, receive, self._cancel)  # type: ignore[arg-type]

    def embed(self, params: GenerateEmbeddingBatchParams) -> EmbeddingStream:
        request_id, receive = self._open()
        self._scheduler.send(Embed(request_id, params))
        return ResultStream(request_id, receive, self._cancel)  # type: ignore[arg-type]

    def _open(self) -> tuple[int, MemoryObjectReceiveStream[Result]]:
        if self._closed:
            raise RuntimeError("The engine is closed; load a new one.")
        request_id = next(self._ids)
        send, receive = anyio.create_memory_object_stream[Result](STREAM_BUFFER)
        self._streams[request_id] = send
        return request_id, receive

    def _cancel(self, request_id: int) -> None:
        if request_id in self._streams and not self._closed:
            self._scheduler.send(Cancel(request_id))

    def _deliver_from_thread(self, outbox: Outbox) -> None:
        try:
            anyio.from_thread.run_sync(self._deliver, outbox, token=self._token)
        except Exception:  # a closed event loop, or a bug: never kill the scheduler for it
            logger.exception("could not deliver results to the event loop")

    def _deliver(self, outbox: Outbox) -> None:
        """Runs on the event loop: hand each request its results, never blocking."""
        for request_id, results, terminal in outbox:
            send = self._streams.get(request_id)
            if send is None:
                continue
            try:
                for result in results:
                    send.send_nowait(result)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
                terminal = True  # the consumer is gone or stuck: stop spending the batch on it
                self._scheduler.send(Cancel(request_id))
            if terminal:
                send.close()
                del self._streams[request_id]
        if self._idle_waiters and self._scheduler.counters.slots_busy == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for event in waiters:
                event.set()

    async def wait_idle(self) -> None:
        """Return once no slot is busy (for tests and graceful drains)."""
        while self._scheduler.counters.slots_busy and not self._closed:
            event = anyio.Event()
            self._idle_waiters.append(event)
            await event.wait()

    # -- introspection ---------------------------------------------------------------------
    @property
    def slots_busy(self) -> int:
        return self._scheduler.counters.slots_busy

    def statistics(self) -> EngineStatistics:
        c = self._scheduler.counters
        return EngineStatistics(
            slots_total=self.slots_total,
            slots_busy=c.slots_busy,
            requests_completed=c.requests_completed,
            tokens_generated=c.tokens_generated,
            prompt_tokens=c.prompt_tokens,
            cached_prompt_tokens=c.cached_prompt_tokens,
            evictions=c.evictions,
            steps=c.steps,
            step_seconds=c.step_seconds,
            decode_seconds=c.decode_seconds,
        )

    def __repr__(self) -> str:
        return f"<LlamaEngine [slots: {self.slots_busy}/{self.slots_total} busy]>"

    # -- closing ---------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop the scheduler and free llama.cpp; open streams end without a terminal."""
        if self._closed:
            return
        self._closed = True
        self._scheduler.stop()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._thread.join)
        for send in self._streams.values():
            send.close()
        self._streams.clear()
        for slot in self._scheduler.slots:
            if slot.request is not None:
                slot.request.sampler.free()
        for event in self._idle_waiters:
            event.set()
        self._ctx.free()
        self._model.free()

    async def __aenter__(self) -> LlamaEngine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
