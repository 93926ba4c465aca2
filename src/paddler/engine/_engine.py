"""`LlamaEngine`: the anyio face of one engine worker process (load, generate, embed, close).

The model lives in a worker process whose initial thread runs the `Scheduler` (see
`_worker.py` for why). This object keeps each request's result stream, turns the worker's
deliveries into stream items, and turns a worker that dies into a terminal error for every
request it was serving.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paddler.engine._errors import EngineCrashed, SlotCannotStart
from paddler.engine._scheduler import (
    Cancel,
    Embed,
    Outbox,
    Result,
    SchedulerCounters,
    Stop,
    Submit,
)
from paddler.engine._stream import (
    EmbeddingResultStream,
    EngineStatistics,
    GenerationStream,
    ResultStream,
)
from paddler.engine._worker_process import WorkerProcess, describe_exit
from paddler.engine._worker_wire import (
    Delivery,
    LoadFailed,
    LoadModel,
    LoadProgress,
    LogLine,
    ModelReady,
)
from paddler.wire import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    EmbeddingError,
    GenerateEmbeddingBatchParams,
    InferenceParameters,
    SamplerError,
    SamplingOverrides,
)

logger = logging.getLogger("paddler.engine")

STREAM_BUFFER = 8192
STOP_GRACE = 10.0  # seconds a worker gets to stop before it is killed
STALL_TIMEOUT = 120.0  # a busy worker silent this long (stuck in llama.cpp or a regex) is killed

GenerationParams = ContinueFromConversationHistoryParams | ContinueFromRawPromptParams

_extra_buffer_types_fault: str | None = None  # once they crashed a worker of this process


def _monotonic(on_progress: Callable[[float], None] | None) -> Callable[[float], None] | None:
    if on_progress is None:
        return None
    highest = [-1.0]

    def report(value: float) -> None:
        if value > highest[0]:
            highest[0] = value
            on_progress(value)

    return report


class LlamaEngine:
    """One model in one worker process, with `slots` sequences in one llama context.

    Create it with `await LlamaEngine.load(...)`. If the worker dies (a fault in llama.cpp),
    every open stream ends with an error and `wait_stopped()` returns why.
    """

    def __init__(
        self,
        parameters: InferenceParameters,
        slots: int,
        *,
        extra_buffer_types: bool,
        stall_timeout: float = STALL_TIMEOUT,
    ) -> None:
        self.stall_timeout = stall_timeout
        self.parameters = parameters
        self.slots_total = slots
        self.extra_buffer_types = extra_buffer_types
        self.extra_buffer_types_fault: str | None = None
        self.metadata: dict[str, str] = {}
        self.model_chat_template: str | None = None
        self.n_ctx = 0
        #: llama.cpp's CPU threads, as the loaded context reports them.
        self.threads = 0
        #: Whether a multimodal projection is loaded (requests may carry images).
        self.multimodal = False
        self._worker: WorkerProcess | None = None
        self._ids = itertools.count(1)
        self._streams: dict[int, tuple[MemoryObjectSendStream[Result], bool]] = {}
        self._abandoned: set[int] = set()
        self._counters = SchedulerCounters()
        self._closing = False
        self._crash: str | None = None
        self._stopped = anyio.Event()
        self._ready = anyio.Event()
        self._progress: float | None = None
        self._progress_changed = anyio.Event()
        self._load_error: Exception | None = None
        self._on_progress: Callable[[float], None] | None = None
        self._idle = anyio.Event()
        self._idle.set()

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
        extra_buffer_types: bool = True,
        threads: int | None = None,
        stall_timeout: float = STALL_TIMEOUT,
        multimodal_projection: str | os.PathLike[str] | None = None,
    ) -> LlamaEngine:
        """Start a worker and load the model in it; cancelling the caller kills the worker.

        `prompt_cache=False` clears a slot's KV for every request, as Paddler does.
        `extra_buffer_types=False` turns off llama.cpp's optional CPU kernels (AMX, weight
        repacking), like `llama-server --no-repack`. When they crash the worker while the model
        loads or warms up, the load is retried once without them; `extra_buffer_types_fault`
        then says why. A worker that serves requests but sends nothing for `stall_timeout`
        seconds (it reports every second between steps) is killed, as if it had crashed.
        `threads` is llama.cpp's CPU thread count (default: half the CPUs, at least 2).
        `multimodal_projection` is an mmproj GGUF for this model, loaded through llama.cpp's
        mtmd so that requests may carry images; one that cannot load raises
        `MultimodalProjectionCannotBeLoaded`.
        """
        if slots < 1 or slots > parameters.n_batch:
            raise SlotCannotStart(f"slots must be between 1 and n_batch, got {slots}")
        if threads is not None and threads < 1:
            raise SlotCannotStart(f"threads must be at least 1, got {threads}")
        request = LoadModel(
            path=os.fspath(model_path),
            parameters=parameters,
            slots=slots,
            template_override=chat_template_override,
            prompt_cache=prompt_cache,
            extra_buffer_types=extra_buffer_types,
            threads=threads,
            log_level=logging.getLogger("paddler").getEffectiveLevel(),
            projector_path=(
                os.fspath(multimodal_projection) if multimodal_projection is not None else None
            ),
        )
        global _extra_buffer_types_fault
        on_progress = _monotonic(on_progress)  # a retried load does not go back to 0
        if extra_buffer_types and _extra_buffer_types_fault is not None:
            # They crashed a worker of this process before: do not crash every load.
            request = attrs.evolve(request, extra_buffer_types=False)
            engine = await cls._load_in_worker(request, on_progress, stall_timeout)
            engine.extra_buffer_types_fault = _extra_buffer_types_fault
            return engine
        try:
            return await cls._load_in_worker(request, on_progress, stall_timeout)
        except EngineCrashed as exc:
            if not extra_buffer_types:
                raise
            logger.warning(
                "llama.cpp's optional CPU kernels (AMX, repacked weights) crashed the engine "
                "worker while loading (%s); loading again without them, as llama-server "
                "--no-repack does",
                exc.how,
            )
            fault = f"llama.cpp's optional CPU kernels crashed the engine worker ({exc.how})"
            retry = attrs.evolve(request, extra_buffer_types=False)
            engine = await cls._load_in_worker(retry, on_progress, stall_timeout)
            engine.extra_buffer_types_fault = _extra_buffer_types_fault = fault
            return engine

    @classmethod
    async def _load_in_worker(
        cls,
        request: LoadModel,
        on_progress: Callable[[float], None] | None,
        stall_timeout: float,
    ) -> LlamaEngine:
        engine = cls(
            request.parameters,
            request.slots,
            extra_buffer_types=request.extra_buffer_types,
            stall_timeout=stall_timeout,
        )
        engine._on_progress = on_progress
        worker = await WorkerProcess.start(
            on_messages=engine._handle_messages,
            on_exit=engine._handle_exit,
            is_busy=engine._is_busy,
            stall_timeout=stall_timeout,
        )
        engine._worker = worker
        try:
            worker.send(request)
            await engine._wait_loaded()
        except BaseException:
            worker.kill()  # a cancelled load: the worker has nothing to finish
            with anyio.CancelScope(shield=True):
                await worker.wait()
            raise
        engine._on_progress = None
        if engine._load_error is not None:
            raise engine._load_error
        return engine

    async def _wait_loaded(self) -> None:
        """Until the worker is ready or failed, calling ``on_progress`` from this task (so a
        callback that cancels the load's scope hears no more after it)."""
        reported: float | None = None
        while True:
            ready = self._ready.is_set()
            if self._on_progress is not None and self._progress not in (None, reported):
                reported = self._progress
                self._on_progress(reported)
                await anyio.lowlevel.checkpoint()  # a callback that cancelled us stops here
            if ready:
                return
            await self._progress_changed.wait()  # also set once ready, failed or dead
            self._progress_changed = anyio.Event()

    # -- requests --------------------------------------------------------------------------
    def generate(
        self,
        params: GenerationParams,
        *,
        overrides: SamplingOverrides | None = None,
        continuation: str | None = None,
    ) -> GenerationStream:
        """Start a generation request; iterate the returned stream for its results.

        ``continuation`` is the start of the answer, already streamed by another agent: it is
        appended to the rendered prompt and counted as generated (see ``prepare``).
        """
        request_id, receive = self._open(embedding=False)
        self._send(Submit(request_id, params, overrides, continuation))
        return ResultStream(request_id, receive, self._cancel)  # type: ignore[arg-type]

    def embed(self, params: GenerateEmbeddingBatchParams) -> EmbeddingResultStream:
        request_id, receive = self._open(embedding=True)
        self._send(Embed(request_id, params))
        return ResultStream(request_id, receive, self._cancel)  # type: ignore[arg-type]

    def _open(self, *, embedding: bool) -> tuple[int, MemoryObjectReceiveStream[Result]]:
        request_id = next(self._ids)
        send, receive = anyio.create_memory_object_stream[Result](STREAM_BUFFER)
        if self._crash is not None:
            send.send_nowait(self._crashed_result(embedding))
            send.close()
        elif self._closing:
            raise RuntimeError("The engine is closed; load a new one.")
        else:
            self._streams[request_id] = (send, embedding)
            self._idle = anyio.Event()
        return request_id, receive

    def _send(self, command: Any) -> None:
        if self._worker is not None and self._crash is None:
            self._worker.send(command)

    def _cancel(self, request_id: int) -> None:
        if request_id in self._streams:
            self._send(Cancel(request_id))

    # -- on the event loop, from the worker's reader thread ----------------------------------
    def _handle_messages(self, messages: list[Any]) -> None:
        progress: float | None = None
        for message in messages:
            if isinstance(message, Delivery):
                self._counters = message.counters
                self._deliver(message.outbox)
            elif isinstance(message, LogLine):
                logging.getLogger(message.name).log(message.level, "%s", message.message)
            elif isinstance(message, LoadProgress):
                progress = message.value  # one callback per batch, with the latest value
            elif isinstance(message, ModelReady):
                self.metadata = message.metadata
                self.model_chat_template = message.metadata.get("tokenizer.chat_template")
                self.n_ctx = message.n_ctx
                self.threads = message.threads
                self.multimodal = message.multimodal
                self._ready.set()
            elif isinstance(message, LoadFailed):
                self._load_error = message.error
                self._ready.set()
        if progress is not None:
            self._progress = progress
        self._progress_changed.set()

    def _deliver(self, outbox: Outbox) -> None:
        """Hand each request its results, never blocking."""
        for request_id, results, terminal in outbox:
            entry = self._streams.get(request_id)
            if entry is None:
                continue
            send = entry[0]
            if request_id in self._abandoned:  # cancelled; its slot is busy until this ends
                if terminal:
                    self._abandoned.discard(request_id)
                    self._end_stream(request_id)
                continue
            try:
                for result in results:
                    send.send_nowait(result)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
                # The consumer is gone or stuck: stop spending the batch on it, and count it
                # in flight until the worker confirms (its terminal), so wait_idle means idle.
                send.close()
                if not terminal:
                    self._abandoned.add(request_id)
                    self._send(Cancel(request_id))
                    continue
            if terminal:
                self._end_stream(request_id)

    def _end_stream(self, request_id: int) -> None:
        send, _ = self._streams.pop(request_id)
        send.close()
        if not self._streams:
            self._idle.set()

    def _is_busy(self) -> bool:
        """Read from the worker's reader thread: an int read, racy but harmless."""
        return bool(self._streams) and not self._closing

    def _handle_exit(self, returncode: int) -> None:
        worker = self._worker
        how = (worker.kill_reason if worker else None) or describe_exit(returncode)
        if not self._ready.is_set():
            self._load_error = EngineCrashed(how)
            self._ready.set()
            self._progress_changed.set()
        elif not self._closing and self._load_error is None:
            self._crash = how
            logger.error(
                "the engine worker %s; %d request(s) end with an error", how, len(self._streams)
            )
        for request_id, (send, embedding) in list(self._streams.items()):
            if self._crash is not None:
                try:
                    send.send_nowait(self._crashed_result(embedding))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
                    pass
            self._end_stream(request_id)
        self._abandoned.clear()
        self._stopped.set()

    def _crashed_result(self, embedding: bool) -> Result:
        message = f"The engine worker {self._crash}; the agent restarts it"
        return EmbeddingError(message) if embedding else SamplerError(message)

    # -- waiting ---------------------------------------------------------------------------
    async def wait_idle(self) -> None:
        """Return once no request is in flight (for tests and graceful drains)."""
        await self._idle.wait()

    async def wait_stopped(self) -> str | None:
        """Return once the worker has exited: why it crashed, or None after `aclose()`."""
        await self._stopped.wait()
        return self._crash

    # -- introspection ---------------------------------------------------------------------
    @property
    def slots_busy(self) -> int:
        return len(self._streams)

    @property
    def crashed(self) -> str | None:
        """How the worker died, if it did (`killed by SIGSEGV`)."""
        return self._crash

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker is not None else None

    def statistics(self) -> EngineStatistics:
        c = self._counters
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
            input_image_tokens=c.input_image_tokens,
        )

    def __repr__(self) -> str:
        return f"<LlamaEngine [slots: {self.slots_busy}/{self.slots_total} busy]>"

    # -- closing ---------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop the worker (killed after a grace period); open streams end without a terminal."""
        if self._closing:
            await self._stopped.wait()
            return
        self._closing = True
        worker = self._worker
        if worker is None:
            return
        with anyio.CancelScope(shield=True):
            worker.send(Stop())
            worker.close_input()
            with anyio.move_on_after(STOP_GRACE):
                await worker.wait()
            if worker.returncode is None:
                logger.warning(
                    "the engine worker did not stop within %.0f s; killing it", STOP_GRACE
                )
                worker.kill()
                await worker.wait()

    async def __aenter__(self) -> LlamaEngine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
