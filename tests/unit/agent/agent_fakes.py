"""A fake engine (fixed tokens, no model) so agent tests need no llama.cpp."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from paddler.agent import EngineSpec
from paddler.wire import ContentToken, Done, InferenceParameters, TokenUsage


def usage(content: int) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=1,
        cached_prompt_tokens=0,
        input_image_tokens=0,
        input_audio_tokens=0,
        content_tokens=content,
        reasoning_tokens=0,
        tool_call_tokens=0,
        undeterminable_tokens=0,
    )


class FakeStream:
    def __init__(self, engine: FakeEngine) -> None:
        self._engine = engine
        self._sent = 0
        self._done = False
        self._cancelled = anyio.Event()

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        if self._cancelled.is_set() or self._sent >= len(self._engine.tokens):
            self._done = True
            return Done(usage=usage(self._sent))
        if self._engine.gate is not None:
            with anyio.move_on_after(10):
                async with anyio.create_task_group() as tg:

                    async def wait_cancel() -> None:
                        await self._cancelled.wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(wait_cancel)
                    assert self._engine.gate is not None
                    await self._engine.gate.wait()
                    tg.cancel_scope.cancel()
            if self._cancelled.is_set():
                self._done = True
                return Done(usage=usage(self._sent))
        token = self._engine.tokens[self._sent]
        self._sent += 1
        await anyio.lowlevel.checkpoint()
        return ContentToken(f"{self._engine.label}{token}")

    async def cancel(self) -> None:
        self._engine.cancelled += 1
        self._cancelled.set()

    async def aclose(self) -> None:
        self._done = True


class FakeEngine:
    """Emits ``tokens`` (prefixed by ``label``) then ``Done``; ``gate`` holds each token."""

    def __init__(self, path: Path, parameters: InferenceParameters, slots: int, label: str) -> None:
        self.path = path
        self.parameters = parameters
        self.slots_total = slots
        self.label = label
        self.tokens = ("a", "b", "c")
        self.gate: anyio.Event | None = None
        self.metadata = {"general.architecture": "fake"}
        self.closed = False
        self.active = 0
        self.cancelled = 0  # how many of its streams were told to stop
        self.overrides: list[Any] = []  # what each generate() got (None: no overrides)
        self.extra_buffer_types_fault: str | None = None
        self.crashed: str | None = None
        self._closed = anyio.Event()

    def generate(
        self, params: Any, *, overrides: Any = None, continuation: str | None = None
    ) -> FakeStream:
        if self.closed:
            raise RuntimeError("engine is closed")
        self.overrides.append(overrides)
        return FakeStream(self)

    def embed(self, params: Any) -> FakeStream:
        raise NotImplementedError("the fake engine has no embeddings")

    async def wait_stopped(self) -> str | None:
        """``None`` once closed (as ``LlamaEngine`` after ``aclose()``), or how it crashed."""
        await self._closed.wait()
        return self.crashed

    def crash(self, how: str) -> None:
        """Act as if the worker died: ``wait_stopped()`` returns ``how``."""
        self.crashed = how
        self._closed.set()

    async def aclose(self) -> None:
        self.closed = True
        self._closed.set()


class FakeLoader:
    """``engine_loader`` for Agent: records loads; ``fail`` makes the next loads raise."""

    def __init__(self) -> None:
        self.engines: list[FakeEngine] = []
        self.specs: list[EngineSpec] = []  # every load asked for, also the failed ones
        self.fail: Exception | None = None

    async def __call__(self, spec: EngineSpec) -> FakeEngine:
        self.specs.append(spec)
        await anyio.lowlevel.checkpoint()
        if self.fail is not None:
            raise self.fail
        engine = FakeEngine(
            spec.model_path, spec.parameters, spec.slots, label=f"e{len(self.engines)}:"
        )
        self.engines.append(engine)
        return engine
