"""The engine worker process: the crash boundary and the fallback off llama.cpp's extra kernels.

Faults are forced with the worker's test hook (``PADDLER_ENGINE_TEST_FAULT``), which raises a
real SIGSEGV in the worker process: what the AMX kernels do on some machines of this project's
kind. On such a machine the unforced fault happens too; the hook makes every machine take the
same path.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anyio
import attrs
import pytest
from engine_test_helpers import chat, collect, content, done

from paddler.engine import LlamaEngine
from paddler.engine import _engine as engine_module
from paddler.engine._worker import FAULT_ENV
from paddler.wire import (
    ContentToken,
    ContinueFromRawPromptParams,
    InferenceParameters,
    SamplerError,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

CRASH = "CRASH-THE-WORKER"


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pipe_threads_end(pid: int | None) -> bool:
    for thread in threading.enumerate():
        if thread.name.startswith(f"paddler-worker-{pid}-"):
            thread.join(timeout=5)
            if thread.is_alive():
                return False
    return True


@pytest.fixture
def forget_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loads of this process remember a fallback; these tests need a process that has none."""
    monkeypatch.setattr(engine_module, "_extra_buffer_types_fault", None)


async def test_the_model_runs_in_another_process(model_path: Path) -> None:
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1
    ) as engine:
        pid = engine.worker_pid
        assert pid is not None and pid != os.getpid()
        assert process_exists(pid)
        results = await collect(engine.generate(chat(("user", "Say hi."), max_tokens=4)))
        assert done(results).usage.completion_tokens == 4
    assert await engine.wait_stopped() is None
    assert not process_exists(pid)  # exited and reaped


async def test_a_crashing_worker_ends_its_requests_and_nothing_else(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, f"prompt:{CRASH}")
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=2
    ) as engine:
        running = engine.generate(ContinueFromRawPromptParams(raw_prompt="1, 2,", max_tokens=500))
        first = await running.__anext__()
        assert isinstance(first, ContentToken)
        crashing = engine.generate(chat(("user", CRASH)))
        for stream in (crashing, running):
            last = (await collect(stream))[-1]
            assert isinstance(last, SamplerError), last
            assert "SIGSEGV" in last.message
        assert await engine.wait_stopped() == "killed by SIGSEGV"
        assert engine.crashed == "killed by SIGSEGV"
        pid = engine.worker_pid
        assert await anyio.to_thread.run_sync(pipe_threads_end, pid)  # they end with it
        later = await collect(engine.generate(chat(("user", "Hello"))))
        assert isinstance(later[-1], SamplerError)  # a dead engine answers at once, with why
    # this process is alive, and a new engine loads and serves
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1
    ) as fresh:
        assert content(await collect(fresh.generate(chat(("user", "Say hi."), max_tokens=4))))


@pytest.mark.usefixtures("forget_fallback")
async def test_a_fault_in_the_extra_kernels_falls_back_without_them(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "extra_buffer_types")
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1
    ) as engine:
        assert not engine.extra_buffer_types
        assert engine.extra_buffer_types_fault is not None
        assert "SIGSEGV" in engine.extra_buffer_types_fault
        results = await collect(engine.generate(chat(("user", "Say hi."), max_tokens=4)))
        assert done(results).usage.completion_tokens == 4
    # the next load of this process does not crash a worker again to find out
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1
    ) as again:
        assert not again.extra_buffer_types
        assert again.extra_buffer_types_fault == engine.extra_buffer_types_fault


@pytest.mark.usefixtures("forget_fallback")
async def test_the_explicit_switch_loads_without_the_extra_kernels(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "extra_buffer_types")
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1, extra_buffer_types=False
    ) as engine:
        assert not engine.extra_buffer_types
        assert engine.extra_buffer_types_fault is None  # nothing crashed
        results = await collect(engine.generate(chat(("user", "Say hi."), max_tokens=4)))
        assert done(results).usage.completion_tokens == 4


async def test_the_thread_count_reaches_llama_cpp(model_path: Path) -> None:
    """Agents sharing a machine split its cores; the count must reach llama.cpp's context."""
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1, threads=1
    ) as engine:
        assert engine.threads == 1
        results = await collect(engine.generate(chat(("user", "Say hi."), max_tokens=4)))
        assert done(results).usage.completion_tokens == 4
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1
    ) as engine:
        assert engine.threads == max(2, (os.cpu_count() or 2) // 2)


async def test_a_worker_that_stops_answering_is_killed_after_its_deadline(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that hangs the worker (as a runaway regex would) ends the worker, not the
    agent: its streams end with an error that says so."""
    monkeypatch.setenv(FAULT_ENV, f"hang:{CRASH}")
    async with await LlamaEngine.load(
        model_path, InferenceParameters.deterministic(), slots=1, stall_timeout=2.0
    ) as engine:
        with anyio.fail_after(30):
            last = (await collect(engine.generate(chat(("user", CRASH)))))[-1]
        assert isinstance(last, SamplerError), last
        assert "stopped answering" in last.message
        assert (await engine.wait_stopped() or "").startswith("stopped answering")


async def test_heartbeats_keep_an_idle_or_ingesting_worker_alive(model_path: Path) -> None:
    """Silence only counts while the worker is busy, and a long prompt (many chunks with no
    output for seconds) is not silence: the worker reports between steps."""
    # 16-token chunks: ~60 short steps with no output, longer in all than the deadline
    parameters = attrs.evolve(InferenceParameters.deterministic(), n_batch=16, context_size=2048)
    async with await LlamaEngine.load(model_path, parameters, slots=1, stall_timeout=3.0) as engine:
        await anyio.sleep(4)
        assert engine.crashed is None
        long_prompt = "The quick brown fox jumps over the lazy dog. " * 100  # ~1,000 tokens
        params = ContinueFromRawPromptParams(raw_prompt=long_prompt, max_tokens=2)
        results = await collect(engine.generate(params))
        assert done(results).usage.prompt_tokens > 900
        assert engine.crashed is None
