"""What the balancer itself costs: added latency per request, and short requests per second.

Agents here run ``FixedTokenEngine``, a benchmark-only engine that emits fixed tokens at once
with no model, so the figures measure the balancer's path (client socket -> buffer ->
dispatch -> agent socket -> engine -> back) and nothing else. The baseline is the same engine
called directly in-process.

    python benchmarks/balancer.py                   # every table
    python benchmarks/balancer.py --quick           # fewer requests, one round
    python benchmarks/balancer.py --only agents     # one section: relay, agents, openai, keyed

The balancer is the real CLI (``python -m paddler_server.cli balancer``) in its own process;
the agents run in a second process started from this file (``agents`` sub-command); the load
generator is this process, on the inference WebSocket (the multiplexed, cheaper path for the
client) and on HTTP NDJSON. All three run on uvloop when it is installed, as the CLI does.

The machine is shared (2 cores here, other work may run): each table is measured ``--rounds``
times and the median of each cell is printed, with the load average before and after.

Sections: the relay table (added latency at 1, 32 and 256 streams, requests/s, balancer CPU per
request); many agents (1 agent x 64 slots vs 200 and 1,000 agents x 4 slots, each sending its
status every second, same balancer and load); the OpenAI API in front of an instant backend
(``_instant_openai.py``) side by side with LiteLLM's proxy in front of the same backend, when
``litellm==1.108.7`` is installed in a separate venv (``--litellm-venv``; create it with
``python -m venv ~/.cache/paddler-benchmarks/litellm-venv`` and
``~/.cache/paddler-benchmarks/litellm-venv/bin/pip install 'litellm[proxy]==1.108.7'``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import connect

from paddler.agent import EngineSpec
from paddler.wire import (
    ContentToken,
    ContinueFromRawPromptParams,
    Done,
    EmbeddingDone,
    InferenceParameters,
    TokenUsage,
)

TOKEN = "tok"


def _usage(content_tokens: int) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=1,
        cached_prompt_tokens=0,
        input_image_tokens=0,
        input_audio_tokens=0,
        content_tokens=content_tokens,
        reasoning_tokens=0,
        tool_call_tokens=0,
        undeterminable_tokens=0,
    )


class FixedTokenStream:
    """``max_tokens`` content tokens then ``Done``; no model, no waiting."""

    def __init__(self, engine: FixedTokenEngine, count: int) -> None:
        self._engine = engine
        self._remaining = count
        self._sent = 0
        self._done = False
        engine.slots_busy += 1

    def __aiter__(self) -> FixedTokenStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        if self._sent == 0:
            await anyio.lowlevel.checkpoint()  # then the rest at once, as one engine delivery
        if self._remaining > 0:
            self._remaining -= 1
            self._sent += 1
            return ContentToken(TOKEN)
        self._finish()
        return Done(usage=_usage(self._sent))

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._engine._released()

    async def cancel(self) -> None:
        self._remaining = 0

    async def aclose(self) -> None:
        self._finish()

    async def __aenter__(self) -> FixedTokenStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _EmbeddingDoneStream:
    def __init__(self) -> None:
        self._done = False

    def __aiter__(self) -> _EmbeddingDoneStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        self._done = True
        return EmbeddingDone()

    async def cancel(self) -> None:
        self._done = True

    async def aclose(self) -> None:
        self._done = True

    async def __aenter__(self) -> _EmbeddingDoneStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class FixedTokenEngine:
    """Benchmark-only engine with the ``LlamaEngine`` interface and no model behind it."""

    def __init__(self, slots: int) -> None:
        self.slots_total = slots
        self.slots_busy = 0
        self.metadata: dict[str, str] = {"general.architecture": "fixed-token-benchmark"}
        self.model_chat_template: str | None = None
        self._idle: anyio.Event | None = None

    extra_buffer_types_fault: str | None = None

    @classmethod
    async def load(cls, spec: EngineSpec) -> FixedTokenEngine:
        """An ``EngineLoader``: only ``spec.slots`` matters here."""
        return cls(spec.slots)

    async def wait_stopped(self) -> str | None:
        await anyio.sleep_forever()  # it never crashes; the agent cancels this wait
        return None

    def generate(
        self, params: Any, *, overrides: Any = None, continuation: str | None = None
    ) -> FixedTokenStream:
        return FixedTokenStream(self, max(0, int(params.max_tokens)))

    def embed(self, params: Any) -> _EmbeddingDoneStream:
        return _EmbeddingDoneStream()

    async def wait_idle(self) -> None:
        if self.slots_busy:
            self._idle = anyio.Event()
            await self._idle.wait()

    def _released(self) -> None:
        self.slots_busy -= 1
        if self.slots_busy == 0 and self._idle is not None:
            self._idle.set()

    def statistics(self) -> Any:
        return None

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> FixedTokenEngine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_agents(management_addr: str, count: int, slots: int) -> None:
    """The ``agents`` sub-command: ``count`` agents with ``FixedTokenEngine`` until killed."""
    from paddler.agent import Agent, AgentConfig

    async with anyio.create_task_group() as tg:
        for index in range(count):
            config = AgentConfig(
                management_url=f"ws://{management_addr}", slots=slots, name=f"fixed-{index}"
            )

            async def one(config: AgentConfig = config) -> None:
                async with Agent(config, engine_loader=FixedTokenEngine.load):
                    await anyio.sleep_forever()

            tg.start_soon(one)


def desired_state(model_file: Path) -> dict[str, Any]:
    from paddler.wire import converter

    parameters = json.loads(converter.dumps(InferenceParameters()))
    return {
        "chat_template_override": None,
        "use_chat_template_override": False,
        "model": {"LocalToAgent": str(model_file)},
        "multimodal_projection": "None",
        "inference_parameters": parameters,
    }


def wait_health(management: str, seconds: float = 60) -> None:
    """Until the balancer at ``management`` answers ``/health`` (a benchmark's setup step)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{management}/health").text == "OK":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("balancer did not start")


def wait_slots(management: str, total: int, seconds: float = 300) -> None:
    """Until the agents of the balancer at ``management`` report ``total`` slots."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        agents = httpx.get(f"http://{management}/api/v1/agents").json()["agents"]
        if sum(a["slots_total"] for a in agents) >= total:
            return
        time.sleep(0.1)
    raise RuntimeError("agents did not report their slots")


class Cluster:
    def __init__(self, agents: int, slots: int, *, extra_args: Sequence[str] = ()) -> None:
        self.inference = f"127.0.0.1:{free_port()}"
        self.management = f"127.0.0.1:{free_port()}"
        self.openai = f"127.0.0.1:{free_port()}"
        self.tmp = Path(tempfile.mkdtemp(prefix="paddler-bench-"))
        self.model_file = self.tmp / "fixed-token.gguf"
        self.model_file.write_bytes(b"GGUF benchmark placeholder")
        quiet = {**os.environ, "PADDLER_LOG_LEVEL": "warning"}
        self.balancer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paddler_server.cli",
                "balancer",
                "--inference-addr",
                self.inference,
                "--management-addr",
                self.management,
                "--compat-openai-addr",
                self.openai,
                "--max-buffered-requests",
                "100000",
                "--buffered-request-timeout",
                "60000",
                *extra_args,
            ],
            env=quiet,
        )
        self._wait_health()
        response = httpx.put(
            f"http://{self.management}/api/v1/balancer_desired_state",
            json=desired_state(self.model_file),
        )
        response.raise_for_status()
        self.agents = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "agents",
                "--management-addr",
                self.management,
                "--count",
                str(agents),
                "--slots",
                str(slots),
            ],
            env=quiet,
        )
        self._wait_slots(agents * slots)

    def _wait_health(self) -> None:
        wait_health(self.management)

    def _wait_slots(self, total: int) -> None:
        wait_slots(self.management, total)

    def stop(self) -> None:
        for process in (self.agents, self.balancer):
            process.terminate()
        for process in (self.agents, self.balancer):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


# -- load ---------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


async def direct_latencies(concurrency: int, requests: int, tokens: int) -> list[float]:
    """Per-request time talking to the engine itself, in-process."""
    engine = FixedTokenEngine(slots=concurrency)
    params = ContinueFromRawPromptParams(raw_prompt="x", max_tokens=tokens)
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            async for _item in engine.generate(params):
                pass
            latencies.append(time.perf_counter() - started)

    await _spread(concurrency, requests, worker)
    return latencies


async def _spread(concurrency: int, requests: int, worker: Callable[[int], Any]) -> None:
    per_worker = max(1, requests // concurrency)
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker, per_worker)


class SocketClient:
    """A multiplexed inference-socket client measuring send-to-terminal time per request."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._waiters: dict[str, anyio.Event] = {}
        self._next = 0

    async def reader(self) -> None:
        async for raw in self._socket:
            if '"Done"' in raw or '"Error"' in raw:
                message = json.loads(raw)
                envelope = message.get("Response") or message.get("Error") or {}
                event = self._waiters.pop(envelope.get("request_id", ""), None)
                if event is not None:
                    event.set()

    async def request(self, tokens: int) -> float:
        self._next += 1
        request_id = f"r{self._next}"
        body = {"raw_prompt": "x", "max_tokens": tokens}
        event = anyio.Event()
        self._waiters[request_id] = event
        started = time.perf_counter()
        await self._socket.send(
            json.dumps({"Request": {"id": request_id, "request": {"ContinueFromRawPrompt": body}}})
        )
        await event.wait()
        return time.perf_counter() - started


async def balancer_latencies(
    url: str, concurrency: int, requests: int, tokens: int, connections: int
) -> tuple[list[float], float]:
    """Per-request latencies through the balancer, and the wall time of the whole run."""
    latencies: list[float] = []
    sockets = [await connect(url, max_size=None) for _ in range(min(connections, concurrency))]
    clients = [SocketClient(s) for s in sockets]
    try:
        async with anyio.create_task_group() as readers:
            for client in clients:
                readers.start_soon(client.reader)
            counter = iter(range(10**9))

            async def worker(count: int) -> None:
                client = clients[next(counter) % len(clients)]
                for _ in range(count):
                    latencies.append(await client.request(tokens))

            started = time.perf_counter()
            await _spread(concurrency, requests, worker)
            wall = time.perf_counter() - started
            readers.cancel_scope.cancel()
    finally:
        for s in sockets:
            await s.close()
    return latencies, wall


async def http_requests_per_second(base: str, concurrency: int, requests: int) -> float:
    body = {"raw_prompt": "x", "max_tokens": 1}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker(count: int) -> None:
            for _ in range(count):
                response = await client.post(f"{base}/api/v1/continue_from_raw_prompt", json=body)
                assert b'"Done"' in response.content, response.content[:200]

        started = time.perf_counter()
        await _spread(concurrency, requests, worker)
        return (concurrency * max(1, requests // concurrency)) / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def balancer_cpu_per_request(cluster: Cluster, url: str, tokens: int, requests: int) -> float:
    """CPU the balancer process spends per request: wall-clock free, so a busy machine
    (other processes on the same cores) does not inflate it."""
    before = cpu_seconds(cluster.balancer.pid)
    await balancer_latencies(url, 32, requests, tokens, 4)
    return (cpu_seconds(cluster.balancer.pid) - before) / requests


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


async def relay_round(cluster: Cluster, url: str, scale: float, tokens: int) -> dict[str, float]:
    """One round of the relay table: every cell, keyed by name."""
    cells: dict[str, float] = {}
    for concurrency in (1, 32, 256):
        requests = int((400 if concurrency == 1 else 2000 if concurrency == 32 else 5120) * scale)
        requests = max(requests, concurrency)
        direct = await direct_latencies(concurrency, requests, tokens)
        through, _ = await balancer_latencies(url, concurrency, requests, tokens, 8)
        cells[f"{concurrency} direct p50"] = percentile(direct, 0.5)
        cells[f"{concurrency} direct p99"] = percentile(direct, 0.99)
        cells[f"{concurrency} bal. p50"] = percentile(through, 0.5)
        cells[f"{concurrency} bal. p99"] = percentile(through, 0.99)
    direct = await direct_latencies(1, int(400 * scale), 1)
    through, _ = await balancer_latencies(url, 1, int(400 * scale), 1, 1)
    cells["1tok direct p50"] = percentile(direct, 0.5)
    cells["1tok direct p99"] = percentile(direct, 0.99)
    cells["1tok bal. p50"] = percentile(through, 0.5)
    cells["1tok bal. p99"] = percentile(through, 0.99)
    short = int(6000 * scale)
    _, wall = await balancer_latencies(url, 64, short, 1, 8)
    cells["ws rps"] = short / wall
    cells["http rps"] = await http_requests_per_second(
        f"http://{cluster.inference}", 32, int(2000 * scale)
    )
    if sys.platform == "linux":
        for count in (1, tokens):
            cells[f"cpu {count}"] = await balancer_cpu_per_request(
                cluster, url, count, int(2000 * scale)
            )
    return cells


def merged(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The median of each cell over the rounds."""
    return {key: median([r[key] for r in rounds]) for key in rounds[0]}


def print_relay(cells: dict[str, float], tokens: int, rounds: int) -> None:
    print(
        f"Balancer overhead, {tokens} tokens per request, median of {rounds} round(s) "
        "(latency = send to terminal Done; added = through balancer - direct engine)"
    )
    print(
        f"{'streams':>9} {'direct p50':>11} {'direct p99':>11} {'bal. p50':>9} "
        f"{'bal. p99':>9} {'added p50':>10} {'added p99':>10}  (ms)"
    )
    for label, key in (("1", "1"), ("32", "32"), ("256", "256"), ("1 (1 tok)", "1tok")):
        d50, d99 = cells[f"{key} direct p50"], cells[f"{key} direct p99"]
        b50, b99 = cells[f"{key} bal. p50"], cells[f"{key} bal. p99"]
        print(
            f"{label:>9} {ms(d50):>11} {ms(d99):>11} {ms(b50):>9} {ms(b99):>9} "
            f"{ms(b50 - d50):>10} {ms(b99 - d99):>10}"
        )
    print("\nShort requests (1 token) per second through one balancer process:")
    print(f"  inference WebSocket, 64 concurrent on 8 sockets: {cells['ws rps']:8.0f} req/s")
    print(f"  HTTP NDJSON, 32 concurrent connections:          {cells['http rps']:8.0f} req/s")
    if "cpu 1" in cells:
        print("\nBalancer process CPU per request (independent of other load on the machine):")
        for count in (1, tokens):
            per_request = cells[f"cpu {count}"]
            print(
                f"  {count:>3} token(s): {per_request * 1000:6.3f} ms "
                f"(= {1 / per_request:6.0f} requests/s per fully used core)"
            )


async def relay_section(rounds: int, scale: float, tokens: int) -> None:
    cluster = await anyio.to_thread.run_sync(lambda: Cluster(agents=4, slots=64))
    url = f"ws://{cluster.inference}/api/v1/inference_socket"
    try:
        await balancer_latencies(url, 8, 200, tokens, 4)  # warm up (imports, connections)
        print(load_average())
        results = [await relay_round(cluster, url, scale, tokens) for _ in range(rounds)]
        print(load_average())
        print_relay(merged(results), tokens, rounds)
    finally:
        await anyio.to_thread.run_sync(cluster.stop)


# -- many agents --------------------------------------------------------------------------


async def agents_section(rounds: int, scale: float, tokens: int) -> None:
    """The same balancer and load with 1 agent x 64 slots, 200 x 4 and 1,000 x 4.

    Every agent reports its status each second (``AgentConfig.status_interval``), so 1,000
    agents are ~1,000 status frames a second into the balancer, next to the requests.
    """
    print(
        f"\nMany agents: {tokens} tokens per request, median of {rounds} round(s); "
        "each agent sends its status every second"
    )
    print(
        f"{'agents':>12} {'seq. p50':>9} {'seq. p99':>9} {'+p50 vs 1':>10} "
        f"{'32-stream rps':>14} {'bal. CPU/req':>13} {'bal. CPU idle':>14}"
    )
    base_p50: float | None = None
    for agents, slots in ((1, 64), (200, 4), (1000, 4)):
        cluster = await anyio.to_thread.run_sync(Cluster, agents, slots)
        url = f"ws://{cluster.inference}/api/v1/inference_socket"
        try:
            await balancer_latencies(url, 8, 200, tokens, 4)
            idle_before = cpu_seconds(cluster.balancer.pid)
            await anyio.sleep(2)
            idle = (cpu_seconds(cluster.balancer.pid) - idle_before) / 2
            p50s, p99s, rps, cpu = [], [], [], []
            for _ in range(rounds):
                sequential, _ = await balancer_latencies(url, 1, int(400 * scale), tokens, 1)
                p50s.append(percentile(sequential, 0.5))
                p99s.append(percentile(sequential, 0.99))
                requests = int(2000 * scale)
                before = cpu_seconds(cluster.balancer.pid)
                _, wall = await balancer_latencies(url, 32, requests, tokens, 8)
                cpu.append((cpu_seconds(cluster.balancer.pid) - before) / requests)
                rps.append(requests / wall)
            p50 = median(p50s)
            base_p50 = p50 if base_p50 is None else base_p50
            label = f"{agents} x {slots}"
            print(
                f"{label:>12} {ms(p50):>9} {ms(median(p99s)):>9} {ms(p50 - base_p50):>10} "
                f"{median(rps):>14.0f} {ms(median(cpu)):>13} {idle * 100:>13.1f}%"
            )
        finally:
            await anyio.to_thread.run_sync(cluster.stop)
    print("  (seq. = one request at a time, ms; bal. CPU idle = the balancer's CPU share with")
    print("   no requests, the cost of the agents' status frames and pings)")


# -- OpenAI API vs LiteLLM ----------------------------------------------------------------

LITELLM_VENV = Path.home() / ".cache" / "paddler-benchmarks" / "litellm-venv"
LITELLM_KEY = "sk-paddler-benchmark"
#: Sent to every target (the backend and our API ignore it; LiteLLM checks it).
AUTH = {"authorization": f"Bearer {LITELLM_KEY}"}


class InstantBackend:
    """``_instant_openai.py`` in its own process."""

    def __init__(self) -> None:
        self.addr = f"127.0.0.1:{free_port()}"
        script = Path(__file__).with_name("_instant_openai.py")
        port = self.addr.rsplit(":", 1)[1]
        self.process = subprocess.Popen([sys.executable, str(script), "--port", port])
        _wait_http(f"http://{self.addr}/v1/models", 30)

    def stop(self) -> None:
        _stop(self.process)


class LiteLLMProxy:
    """LiteLLM's proxy (from its own venv) with one model: the instant backend."""

    def __init__(self, venv: Path, backend: str) -> None:
        self.addr = f"127.0.0.1:{free_port()}"
        self.tmp = Path(tempfile.mkdtemp(prefix="paddler-bench-litellm-"))
        config = self.tmp / "config.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: fixed\n"
            "    litellm_params:\n"
            "      model: openai/fixed\n"
            f"      api_base: http://{backend}/v1\n"
            "      api_key: benchmark\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
        )
        env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list
            "LITELLM_LOG": "ERROR",
            "LITELLM_MASTER_KEY": LITELLM_KEY,  # it refuses to start without one
        }
        env.pop("PYTHONPATH", None)
        host, port = self.addr.rsplit(":", 1)
        self.process = subprocess.Popen(
            [
                str(venv / "bin" / "litellm"),
                "--config",
                str(config),
                "--host",
                host,
                "--port",
                port,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_http(f"http://{self.addr}/health/liveliness", 120)

    def stop(self) -> None:
        _stop(self.process)


def _wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def chat_body(stream: bool, tokens: int) -> dict[str, Any]:
    return {
        "model": "fixed",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": tokens,
        "stream": stream,
    }


async def chat_latencies(base: str, stream: bool, tokens: int, requests: int) -> list[float]:
    """Sequential chat completions: request sent to the last byte of the answer."""
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60, headers=AUTH) as client:
        url = f"{base}/v1/chat/completions"
        body = chat_body(stream, tokens)
        for index in range(requests + 20):
            started = time.perf_counter()
            if stream:
                async with client.stream("POST", url, json=body) as response:
                    tail = b""
                    async for chunk in response.aiter_bytes():
                        tail = (tail + chunk)[-64:]
                assert b"[DONE]" in tail, tail
            else:
                response = await client.post(url, json=body)
                assert response.status_code == 200, response.text[:200]
            if index >= 20:  # the first ones warm up connections and caches
                latencies.append(time.perf_counter() - started)
    return latencies


async def chat_requests_per_second(base: str, clients: int, requests: int) -> float:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=AUTH) as client:

        async def worker(count: int) -> None:
            for _ in range(count):
                response = await client.post(
                    f"{base}/v1/chat/completions", json=chat_body(False, 16)
                )
                assert response.status_code == 200, response.text[:200]

        started = time.perf_counter()
        await _spread(clients, requests, worker)
        return (clients * max(1, requests // clients)) / (time.perf_counter() - started)


async def openai_section(rounds: int, scale: float, tokens: int, litellm_venv: Path) -> None:
    """Chat completions through our OpenAI API (balancer + a FixedTokenEngine agent) and
    through LiteLLM's proxy, both measured against the instant backend called directly."""
    stops: list[Callable[[], None]] = []
    try:
        backend = await anyio.to_thread.run_sync(InstantBackend)
        stops.append(backend.stop)
        cluster = await anyio.to_thread.run_sync(lambda: Cluster(agents=1, slots=64))
        stops.append(cluster.stop)
        proxy: LiteLLMProxy | None = None
        if (litellm_venv / "bin" / "litellm").exists():
            proxy = await anyio.to_thread.run_sync(lambda: LiteLLMProxy(litellm_venv, backend.addr))
            stops.append(proxy.stop)
        targets = {"direct": f"http://{backend.addr}", "ours": f"http://{cluster.openai}"}
        if proxy is not None:
            targets["LiteLLM"] = f"http://{proxy.addr}"
        requests = int(200 * scale)
        print(f"\nOpenAI chat completions in front of an instant backend, median of {rounds}:")
        print(load_average())
        cells: dict[str, dict[str, list[float]]] = {
            name: {"plain": [], "stream": [], "rps": []} for name in targets
        }
        cpu: dict[str, list[float]] = {"plain": [], "stream": []}  # ours: balancer CPU/request
        for _ in range(rounds):
            for name, base in targets.items():
                before = cpu_seconds(cluster.balancer.pid)
                plain = await chat_latencies(base, False, tokens, requests)
                between = cpu_seconds(cluster.balancer.pid)
                streamed = await chat_latencies(base, True, tokens, requests)
                if name == "ours":  # chat_latencies sends 20 warm-up requests first
                    cpu["plain"].append((between - before) / (requests + 20))
                    cpu["stream"].append(
                        (cpu_seconds(cluster.balancer.pid) - between) / (requests + 20)
                    )
                cells[name]["plain"].append(percentile(plain, 0.5))
                cells[name]["stream"].append(percentile(streamed, 0.5))
                rps = await chat_requests_per_second(base, 32, int(1000 * scale))
                cells[name]["rps"].append(rps)
        print(load_average())
        direct = {key: median(values) for key, values in cells["direct"].items()}
        print(
            f"{'':>8} {'p50 sequential':>15} {'added':>8} {'p50 stream':>11} {'added':>8} "
            f"{'32 clients':>11}"
        )
        for name in targets:
            row = {key: median(values) for key, values in cells[name].items()}
            added_plain = row["plain"] - direct["plain"]
            added_stream = row["stream"] - direct["stream"]
            print(
                f"{name:>8} {ms(row['plain']):>15} {ms(added_plain):>8} "
                f"{ms(row['stream']):>11} {ms(added_stream):>8} {row['rps']:>7.0f} req/s"
            )
        print(
            f"  (ms; sequential = one non-streaming request at a time; stream = {tokens} "
            "chunks to [DONE]; added = minus the backend called directly; ours includes the "
            "hop to the agent)"
        )
        print(
            f"  ours, balancer process CPU per request (independent of other load): "
            f"{ms(median(cpu['plain'])).strip()} sequential, {ms(median(cpu['stream'])).strip()} "
            "stream"
        )
        if proxy is None:
            print(f"  LiteLLM: not installed at {litellm_venv} (see this file's docstring)")
    finally:
        for stop in stops:
            await anyio.to_thread.run_sync(stop)


async def benchmark(
    quick: bool, tokens: int, rounds: int, only: str | None, litellm_venv: Path
) -> None:
    scale = 0.25 if quick else 1.0
    rounds = 1 if quick else rounds
    if only in (None, "relay"):
        await relay_section(rounds, scale, tokens)
    if only in (None, "agents"):
        await agents_section(rounds, scale, tokens)
    if only in (None, "openai"):
        await openai_section(rounds, scale, tokens, litellm_venv)
    if only in (None, "keyed"):
        import keyed  # the keyed row: what API keys and their limits add (benchmarks/keyed.py)

        await keyed.benchmark(quick, tokens, rounds, local_only=False)


def _backend_options() -> dict[str, Any]:
    """uvloop when installed, like the CLI (``paddler_server._run``)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    agents = sub.add_parser("agents", help="run FixedTokenEngine agents (used internally)")
    agents.add_argument("--management-addr", required=True)
    agents.add_argument("--count", type=int, default=4)
    agents.add_argument("--slots", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per request")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per table (medians)")
    parser.add_argument(
        "--only", choices=("relay", "agents", "openai", "keyed"), help="one section"
    )
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    args = parser.parse_args()
    options = _backend_options()
    if args.command == "agents":
        anyio.run(run_agents, args.management_addr, args.count, args.slots, backend_options=options)
    else:
        anyio.run(
            benchmark,
            args.quick,
            args.tokens,
            args.rounds,
            args.only,
            args.litellm_venv,
            backend_options=options,
        )


if __name__ == "__main__":
    main()
