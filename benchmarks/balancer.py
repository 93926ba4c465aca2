"""What the balancer itself costs: added latency per request, and short requests per second.

Agents here run ``FixedTokenEngine``, a benchmark-only engine that emits fixed tokens at once
with no model, so the figures measure the balancer's path (client socket -> buffer ->
dispatch -> agent socket -> engine -> back) and nothing else. The baseline is the same engine
called directly in-process.

    python benchmarks/balancer.py                   # the full table
    python benchmarks/balancer.py --quick           # fewer requests

The balancer is the real CLI (``python -m paddler_server.cli balancer``) in its own process;
the agents run in a second process started from this file (``agents`` sub-command); the load
generator is this process, on the inference WebSocket (the multiplexed, cheaper path for the
client) and on HTTP NDJSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import connect

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
        await anyio.lowlevel.checkpoint()
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

    @classmethod
    async def load(
        cls, model_path: Any, parameters: Any, *, slots: int, **_ignored: Any
    ) -> FixedTokenEngine:
        return cls(slots)

    def generate(self, params: Any, *, overrides: Any = None) -> FixedTokenStream:
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


class Cluster:
    def __init__(self, agents: int, slots: int) -> None:
        self.inference = f"127.0.0.1:{free_port()}"
        self.management = f"127.0.0.1:{free_port()}"
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
                "--max-buffered-requests",
                "100000",
                "--buffered-request-timeout",
                "60000",
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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{self.management}/health").text == "OK":
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("balancer did not start")

    def _wait_slots(self, total: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            agents = httpx.get(f"http://{self.management}/api/v1/agents").json()["agents"]
            if sum(a["slots_total"] for a in agents) >= total:
                return
            time.sleep(0.1)
        raise RuntimeError("agents did not report their slots")

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


async def benchmark(quick: bool, tokens: int) -> None:
    cluster = await anyio.to_thread.run_sync(lambda: Cluster(agents=4, slots=64))
    url = f"ws://{cluster.inference}/api/v1/inference_socket"
    scale = 0.25 if quick else 1.0
    try:
        # Warm up both paths (imports, connections, JIT-free but caches).
        await balancer_latencies(url, 8, 200, tokens, 4)
        print(
            f"Balancer overhead, {tokens} tokens per request "
            "(latency = send to terminal Done; added = through balancer - direct engine)"
        )
        print(
            f"{'streams':>8} {'direct p50':>11} {'direct p99':>11} {'bal. p50':>9} "
            f"{'bal. p99':>9} {'added p50':>10} {'added p99':>10}  (ms)"
        )
        for concurrency in (1, 32, 256):
            requests = int(
                (400 if concurrency == 1 else 2000 if concurrency == 32 else 5120) * scale
            )
            requests = max(requests, concurrency)
            direct = await direct_latencies(concurrency, requests, tokens)
            through, _ = await balancer_latencies(url, concurrency, requests, tokens, 8)
            d50, d99 = percentile(direct, 0.5), percentile(direct, 0.99)
            b50, b99 = percentile(through, 0.5), percentile(through, 0.99)
            print(
                f"{concurrency:>8} {ms(d50):>11} {ms(d99):>11} {ms(b50):>9} {ms(b99):>9} "
                f"{ms(b50 - d50):>10} {ms(b99 - d99):>10}"
            )
        direct = await direct_latencies(1, int(400 * scale), 1)
        through, _ = await balancer_latencies(url, 1, int(400 * scale), 1, 1)
        print(
            f"{'1 (1 tok)':>8} {ms(percentile(direct, 0.5)):>11} {ms(percentile(direct, 0.99)):>11}"
            f" {ms(percentile(through, 0.5)):>9} {ms(percentile(through, 0.99)):>9}"
            f" {ms(percentile(through, 0.5) - percentile(direct, 0.5)):>10}"
            f" {ms(percentile(through, 0.99) - percentile(direct, 0.99)):>10}"
        )
        short = int(6000 * scale)
        _, wall = await balancer_latencies(url, 64, short, 1, 8)
        print("\nShort requests (1 token) per second through one balancer process:")
        print(f"  inference WebSocket, 64 concurrent on 8 sockets: {short / wall:8.0f} req/s")
        rps = await http_requests_per_second(f"http://{cluster.inference}", 32, int(2000 * scale))
        print(f"  HTTP NDJSON, 32 concurrent connections:          {rps:8.0f} req/s")
        if sys.platform == "linux":
            print("\nBalancer process CPU per request (independent of other load on the machine):")
            for count in (1, tokens):
                per_request = await balancer_cpu_per_request(cluster, url, count, int(2000 * scale))
                print(
                    f"  {count:>3} token(s): {per_request * 1000:6.3f} ms "
                    f"(= {1 / per_request:6.0f} requests/s per fully used core)"
                )
    finally:
        await anyio.to_thread.run_sync(cluster.stop)


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
    args = parser.parse_args()
    if args.command == "agents":
        anyio.run(run_agents, args.management_addr, args.count, args.slots)
    else:
        anyio.run(benchmark, args.quick, args.tokens)


if __name__ == "__main__":
    main()
