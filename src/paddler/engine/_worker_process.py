"""The agent's handle on one engine worker process: start it, send commands, hear back.

Neither the event loop nor the worker's decode loop ever waits for the other. Commands go
through a writer thread, which blocks on a full pipe instead of the loop. Results are read on
the loop itself under asyncio (a non-blocking pipe watched with ``add_reader``): each chunk of
messages costs one wakeup of the loop, not a thread's wakeup, a hand-off of the GIL and a write
to the loop's self-pipe, which on a 2-core machine is CPU taken from llama.cpp's threads.
Other backends (trio) get a reader thread that hands each chunk to the loop in one call.
Neither thread touches llama.cpp (this process never loads it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel

from paddler.engine._worker_wire import FrameDecoder, encode

logger = logging.getLogger("paddler.engine")

READ_SIZE = 1 << 20
WATCH_INTERVAL = 1.0  # how often the reader checks a silent worker against its deadline
_CLOSE = object()


def describe_exit(returncode: int) -> str:
    """`killed by SIGSEGV` or `exited with status 3`."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class WorkerProcess:
    """`python -m paddler.engine._worker`, with its pipes served by two threads.

    ``on_messages`` runs on the event loop with every batch of messages the worker sent;
    ``on_exit`` runs there once, with the return code, after the worker's last message.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        to_worker: int,
        from_worker: int,
        *,
        on_messages: Callable[[list[Any]], None],
        on_exit: Callable[[int], None],
        is_busy: Callable[[], bool],
        stall_timeout: float,
    ) -> None:
        self._process = process
        self._is_busy = is_busy
        self._stall_timeout = stall_timeout
        #: Why this side killed the worker, when it did (it stopped answering).
        self.kill_reason: str | None = None
        self._to_worker = to_worker
        self._from_worker = from_worker
        self._on_messages = on_messages
        self._on_exit = on_exit
        self._token = anyio.lowlevel.current_token()
        self._outgoing: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.returncode: int | None = None
        self._exited = anyio.Event()
        threading.Thread(
            target=self._write_loop, name=f"paddler-worker-{self.pid}-out", daemon=True
        ).start()
        self._reader: _LoopReader | None = None
        native = self._token.native_token
        if isinstance(native, asyncio.AbstractEventLoop):
            self._reader = _LoopReader(self, native)
        else:
            threading.Thread(
                target=self._read_loop, name=f"paddler-worker-{self.pid}-in", daemon=True
            ).start()

    @classmethod
    async def start(
        cls,
        *,
        on_messages: Callable[[list[Any]], None],
        on_exit: Callable[[int], None],
        is_busy: Callable[[], bool] = lambda: False,
        stall_timeout: float = float("inf"),
    ) -> WorkerProcess:
        """Spawn the worker. While ``is_busy()``, a worker silent for ``stall_timeout``
        seconds (it sends a heartbeat every second between steps) is killed."""

        def spawn() -> tuple[subprocess.Popen[bytes], int, int]:
            command_read, command_write = os.pipe()
            result_read, result_write = os.pipe()
            env = dict(os.environ)
            # numpy's BLAS threads would be more threads than CPUs beside llama.cpp's OpenMP.
            env.setdefault("OPENBLAS_NUM_THREADS", "1")
            try:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "paddler.engine._worker",
                        str(command_read),
                        str(result_write),
                    ],
                    pass_fds=(command_read, result_write),
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            except BaseException:
                for fd in (command_write, result_read):
                    os.close(fd)
                raise
            finally:
                os.close(command_read)
                os.close(result_write)
            return process, command_write, result_read

        # Spawned from the event loop's thread, not a worker thread: Linux's parent-death
        # signal, which the worker asks for, fires when the *thread* that forked it ends.
        process, to_worker, from_worker = spawn()
        await anyio.lowlevel.checkpoint()
        logger.debug("engine worker %d started", process.pid)
        return cls(
            process,
            to_worker,
            from_worker,
            on_messages=on_messages,
            on_exit=on_exit,
            is_busy=is_busy,
            stall_timeout=stall_timeout,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def send(self, message: Any) -> None:
        """Queue a command; never blocks (the writer thread waits on the pipe)."""
        self._outgoing.put(message)

    def close_input(self) -> None:
        """No more commands: the worker stops once it has read what was sent."""
        self._outgoing.put(_CLOSE)

    def kill(self) -> None:
        if self._process.poll() is None:
            try:
                self._process.kill()
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        """The return code, once the worker exited and its last message was handled."""
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    # -- threads ------------------------------------------------------------------------
    def _write_loop(self) -> None:
        try:
            while True:
                message = self._outgoing.get()
                if message is _CLOSE:
                    return
                data = bytearray(encode(message))
                while True:  # one write for everything queued
                    try:
                        more = self._outgoing.get_nowait()
                    except queue.Empty:
                        break
                    if more is _CLOSE:
                        self._outgoing.put(_CLOSE)
                        break
                    data += encode(more)
                view = memoryview(data)
                while view:
                    view = view[os.write(self._to_worker, view) :]
        except OSError:  # the worker is gone; the reader reports it
            pass
        finally:
            os.close(self._to_worker)

    def _read_loop(self) -> None:
        decoder = FrameDecoder()
        loop_alive = True
        heard = time.monotonic()
        try:
            while True:
                ready, _, _ = select.select([self._from_worker], [], [], WATCH_INTERVAL)
                if not ready:
                    self._check_stall(time.monotonic() - heard)
                    continue
                heard = time.monotonic()
                try:
                    data = os.read(self._from_worker, READ_SIZE)
                except OSError:
                    data = b""
                if not data:
                    break
                messages = decoder.feed(data)
                if messages and loop_alive:
                    loop_alive = self._call_loop(self._on_messages, messages)
                    if not loop_alive:  # nobody is left to serve: stop the worker
                        self.kill()
        finally:
            os.close(self._from_worker)
            self._outgoing.put(_CLOSE)  # the writer thread ends too, even if nobody closes
            returncode = self._process.wait()
            if loop_alive:
                self._call_loop(self._exit, returncode)

    def _call_loop(self, function: Callable[[Any], None], argument: Any) -> bool:
        """Schedule `function(argument)` on the event loop; False once the loop is gone.

        It does not wait for the call to run (`anyio.from_thread.run_sync` would): the reader
        then sleeps in `select` again at once instead of in a second handoff per message,
        which costs a pair of thread switches per token. Calls run in the order scheduled.
        """
        native = self._token.native_token
        try:
            if isinstance(native, asyncio.AbstractEventLoop):
                native.call_soon_threadsafe(_guarded, function, argument)
            else:  # trio's TrioToken
                native.run_sync_soon(_guarded, function, argument)  # type: ignore[attr-defined]
        except RuntimeError:  # a closed loop, or trio's RunFinishedError
            return False
        return True

    def _check_stall(self, silent: float) -> None:
        """Kill a busy worker that has sent nothing for `silent` seconds, past the limit."""
        if silent > self._stall_timeout and self._is_busy() and self.kill_reason is None:
            self.kill_reason = f"stopped answering for {silent:.0f} s and was killed"
            logger.error("the engine worker %d %s", self.pid, self.kill_reason)
            self.kill()

    def _exit(self, returncode: int) -> None:
        self.returncode = returncode
        self._exited.set()
        self._on_exit(returncode)


def _guarded(function: Callable[[Any], None], argument: Any) -> None:
    try:
        function(argument)
    except Exception:  # a bug in a handler must not stop the reader thread
        logger.exception("engine worker message handling failed")


class _LoopReader:
    """The worker's results, read on the asyncio loop: `add_reader` on the non-blocking pipe,
    with a timer for the stall check. After the end of the output, one short-lived thread
    waits for the process to exit and reports it to the loop."""

    def __init__(self, worker: WorkerProcess, loop: asyncio.AbstractEventLoop) -> None:
        self._worker = worker
        self._loop = loop
        self._fd = worker._from_worker
        self._decoder = FrameDecoder()
        self._heard = time.monotonic()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._readable)
        self._timer = loop.call_later(WATCH_INTERVAL, self._watch)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._end()
            return
        self._heard = time.monotonic()
        messages = self._decoder.feed(data)
        if messages:
            _guarded(self._worker._on_messages, messages)

    def _watch(self) -> None:
        self._worker._check_stall(time.monotonic() - self._heard)
        self._timer = self._loop.call_later(WATCH_INTERVAL, self._watch)

    def _end(self) -> None:
        self._timer.cancel()
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        worker = self._worker
        worker._outgoing.put(_CLOSE)  # the writer thread ends too, even if nobody closes

        def wait_exit() -> None:
            worker._call_loop(worker._exit, worker._process.wait())

        threading.Thread(
            target=wait_exit, name=f"paddler-worker-{worker.pid}-exit", daemon=True
        ).start()
