"""The engine worker process: `python -m paddler.engine._worker IN_FD OUT_FD`.

Its initial thread loads the model and then runs the `Scheduler`, and it starts no other
thread: llama.cpp built with OpenMP throttles its spin-wait (about 3x slower here) when
`llama_decode` runs on any other thread, or when a second decoding thread exists. The process
is also the crash boundary: a fault inside llama.cpp ends the worker, never the agent.

Commands arrive on IN_FD; results leave on OUT_FD, which is non-blocking: output waits in
memory rather than stalling a decode step when the engine is slow to read.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import sys
import time
import traceback
from pathlib import Path

from paddler.engine._errors import ModelCannotBeLoaded, ModelLoadError
from paddler.engine._loading import load_model
from paddler.engine._scheduler import Command, Outbox, Scheduler, Stop, Submit
from paddler.engine._worker_wire import (
    Delivery,
    FrameDecoder,
    Heartbeat,
    LoadFailed,
    LoadModel,
    LoadProgress,
    LogLine,
    ModelReady,
    encode,
)
from paddler.wire import ContinueFromConversationHistoryParams, ContinueFromRawPromptParams

READ_SIZE = 1 << 20
HEARTBEAT_INTERVAL = 1.0  # the engine kills a busy worker that stays silent far longer
COALESCE_SECONDS = 0.05
"""How long a request's later tokens may wait to leave together: a stream arrives at most
20 times a second, finer than a reader can follow. Each delivery wakes the agent, the
balancer and the client, and on a machine whose cores all decode, each wake costs about half
a millisecond of cold-cache CPU taken from the decode threads (25 ms left the agent and the
balancer 0.2-0.25 ms of CPU per token at one stream, 50 ms 0.14-0.17 ms). A request's first
results and its end leave at once, and so do logs, load progress and heartbeats."""

FAULT_ENV = "PADDLER_ENGINE_TEST_FAULT"
"""Test hook, read by the worker only. ``extra_buffer_types``: crash with SIGSEGV after loading
whenever llama.cpp's extra buffer types are on (what AMX kernels do in some VMs);
``prompt:TEXT``: crash with SIGSEGV on a request whose prompt contains TEXT; ``hang:TEXT``:
stop answering (as a runaway regex or template would) on such a request."""


class PipeChannel:
    """The worker's end of its two pipes, and the scheduler's `CommandSource`."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self._in = in_fd
        self._out = out_fd
        os.set_blocking(out_fd, False)
        self._decoder = FrameDecoder()
        self._pending = bytearray()
        self._held = bytearray()
        self._input_closed = False
        self._last_send = time.monotonic()

    def send(self, message: object, *, urgent: bool = True) -> None:
        """Write `message` now, or, unless `urgent`, hold it for up to `COALESCE_SECONDS` to
        leave in one write with what follows (in order: an urgent message takes it along)."""
        self._held += encode(message)
        if urgent or time.monotonic() - self._last_send >= COALESCE_SECONDS:
            self._release_held()

    def _release_held(self) -> None:
        self._pending += self._held
        self._held.clear()
        self._last_send = time.monotonic()
        self._write_some()

    def _write_some(self) -> None:
        while self._pending:
            try:
                n = os.write(self._out, self._pending)
            except BlockingIOError:
                return
            except OSError:  # the engine is gone: nobody reads what we would write
                self._pending.clear()
                return
            del self._pending[:n]

    def take(self, timeout: float) -> list[Command]:
        """`CommandSource.take`; a closed input (the engine went away) reads as `Stop`."""
        if self._input_closed:
            return [Stop()]
        silent = time.monotonic() - self._last_send
        if self._held and (timeout > 0 or silent >= COALESCE_SECONDS):
            self._release_held()  # never sleep on held output
        elif silent > HEARTBEAT_INTERVAL:
            self.send(Heartbeat())  # between steps: a long prompt sends nothing else
        readers = [self._in]
        writers = [self._out] if self._pending else []
        readable, writable, _ = select.select(readers, writers, [], timeout)
        if writable:
            self._write_some()
        if not readable:
            return []
        data = os.read(self._in, READ_SIZE)
        if not data:
            self._input_closed = True
            return [Stop()]
        return self._decoder.feed(data)

    def receive_blocking(self) -> object:
        while True:
            for message in self.take(1.0):
                return message

    def close(self, timeout: float = 10.0) -> None:
        """Write out what is pending (blocking, for up to `timeout` seconds)."""
        self._release_held()
        deadline = timeout
        while self._pending and deadline > 0:
            select.select([], [self._out], [], 0.1)
            self._write_some()
            deadline -= 0.1


class StartsAndEnds:
    """Tells the deliveries that must leave at once: a request's first results (its time to
    first token) and its end (which frees the slot in the balancer's books)."""

    def __init__(self) -> None:
        self._streaming: set[int] = set()

    def in_outbox(self, outbox: Outbox) -> bool:
        found = False
        for request_id, _, done in outbox:
            if done:
                self._streaming.discard(request_id)
                found = True
            elif request_id not in self._streaming:
                self._streaming.add(request_id)
                found = True
        return found


class ForwardLogs(logging.Handler):
    """Sends each record to the engine, which logs it in the agent's process."""

    def __init__(self, channel: PipeChannel) -> None:
        super().__init__()
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._channel.send(LogLine(record.name, record.levelno, self.format(record)))
        except Exception:
            self.handleError(record)


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the agent dies, even if it could not close our pipe."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


class FaultOnPrompt:
    """Test hook: a `CommandSource` that crashes (or hangs) on a prompt containing `marker`."""

    def __init__(self, source: PipeChannel, marker: str, *, hang: bool) -> None:
        self._source = source
        self._marker = marker
        self._hang = hang

    def take(self, timeout: float) -> list[Command]:
        commands = self._source.take(timeout)
        for command in commands:
            if isinstance(command, Submit) and self._marker in _prompt_text(command):
                if self._hang:
                    while True:
                        time.sleep(3600)
                _crash()
        return commands


def _prompt_text(command: Submit) -> str:
    params = command.params
    if isinstance(params, ContinueFromRawPromptParams):
        return params.raw_prompt
    assert isinstance(params, ContinueFromConversationHistoryParams)
    return " ".join(str(m.content) for m in params.conversation_history)


def run(in_fd: int, out_fd: int) -> None:
    channel = PipeChannel(in_fd, out_fd)
    handler = ForwardLogs(channel)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    command = channel.receive_blocking()
    if isinstance(command, Stop):
        return
    assert isinstance(command, LoadModel), command
    root.setLevel(command.log_level)
    fault = os.environ.get(FAULT_ENV, "")
    last = [-1.0]

    def progress(value: float) -> bool:
        if value >= 1.0 or value - last[0] >= 0.01:
            last[0] = value
            channel.send(LoadProgress(value))
        return True

    try:
        loaded = load_model(
            Path(command.path),
            command.parameters,
            slots=command.slots,
            template_override=command.template_override,
            progress=progress,
            extra_buffer_types=command.extra_buffer_types,
            threads=command.threads,
            projector_path=command.projector_path or None,
        )
    except ModelLoadError as exc:
        channel.send(LoadFailed(exc))
        channel.close()
        return
    except Exception as exc:
        channel.send(LoadFailed(ModelCannotBeLoaded(f"{type(exc).__name__}: {exc}")))
        channel.close()
        return
    assert loaded is not None  # never cancelled: the engine kills the worker instead
    if fault == "extra_buffer_types" and command.extra_buffer_types:
        _crash()
    channel.send(
        ModelReady(
            metadata=loaded.metadata,
            n_ctx=loaded.ctx.n_ctx,
            threads=loaded.ctx.n_threads,
            multimodal=loaded.projector is not None,
        )
    )
    kind, _, marker = fault.partition(":")
    source: PipeChannel | FaultOnPrompt = channel
    if kind in ("prompt", "hang") and marker:
        source = FaultOnPrompt(channel, marker, hang=kind == "hang")
    scheduler: Scheduler

    starts_and_ends = StartsAndEnds()

    def deliver(outbox: Outbox) -> None:
        urgent = starts_and_ends.in_outbox(outbox)
        channel.send(Delivery(outbox, scheduler.counters), urgent=urgent)

    scheduler = Scheduler(
        loaded,
        command.parameters,
        slots=command.slots,
        deliver=deliver,
        prompt_cache=command.prompt_cache,
        commands=source,
    )
    scheduler.run_blocking()
    channel.send(Delivery([], scheduler.counters))
    channel.close()


def main(argv: list[str]) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the agent, which stops us
    in_fd, out_fd = int(argv[0]), int(argv[1])
    code = 0
    try:
        run(in_fd, out_fd)
    except BaseException:
        traceback.print_exc()
        code = 1
    # Skip destructors and atexit: the OS frees llama.cpp's memory at once.
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
