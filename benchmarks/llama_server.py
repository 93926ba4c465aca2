"""Our full HTTP path against llama-server, built from the same llama.cpp, in one run.

    python benchmarks/llama_server.py            # builds the anchor first if needed (~10 min)

Both sides get the same GGUF (the demo model), 4 slots, F16 KV cache, the same context and
batch sizes and thread count, llama.cpp's extra CPU kernels off (``--no-repack``: they crash
on some machines of this kind), greedy decoding and 128 new tokens per request, streamed over
HTTP. Ours is the real CLI: ``paddler balancer`` + ``paddler agent --slots 4`` (agent, then its
engine worker process), driven through the native NDJSON API. Blocks alternate between the two
servers at each concurrency, and each prompt is new to both (no prompt-cache hits).

The C++ ceiling is ``llama-batched-bench`` (no HTTP, no sampling) at 1, 4 and 8 sequences,
run after each pair of blocks at the same number of sequences: this machine's speed drifts by
10-20% within an hour, and a ceiling measured once at the start drifted with it.
Also printed: CPU time per generated token of the agent, its worker and the balancer, and
resident memory, read from /proc. (The scheduler's Python share of a step is in
benchmarks/engine.py, which reads the engine's statistics in-process.)
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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio
import attrs
import httpx

from anchor_build import build
from engine import model_path, raw_prompt, threads
from paddler.wire import (
    BalancerDesiredState,
    InferenceParameters,
    KvCacheDtype,
    LocalToAgentModel,
    converter,
)

NEW_TOKENS = 128
SLOTS = 4
CONTEXT = 8192
N_BATCH = 2048


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def same_llama_arguments() -> list[str]:
    """What both llama.cpp tools get, matching our engine's context for the same GGUF."""
    return [
        "-m",
        str(model_path()),
        "-c",
        str(CONTEXT),
        "-b",
        str(N_BATCH),
        "-ub",
        "512",  # the engine's n_ubatch: min(n_batch, 512)
        "-t",
        str(threads()),
        "-tb",
        str(threads()),
        "-ctk",
        "f16",
        "-ctv",
        "f16",
        "--no-repack",
    ]


class LlamaServer:
    def __init__(self, binary: Path, log: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                str(binary),
                *same_llama_arguments(),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--parallel",
                str(SLOTS),
                "--no-webui",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_http(f"http://127.0.0.1:{self.port}/health")

    async def one(self, client: httpx.AsyncClient, prompt: str, arrivals: list[float]) -> int:
        body = {
            "prompt": prompt,
            "n_predict": NEW_TOKENS,
            "temperature": 0.0,
            "top_k": 1,
            "repeat_penalty": 1.0,
            "stream": True,
        }
        tokens = 0
        url = f"http://127.0.0.1:{self.port}/completion"
        async with client.stream("POST", url, json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if '"stop":true' not in line:  # a token event (parsed only at the end,
                    arrivals.append(time.perf_counter())  # as ours is)
                    continue
                tokens = int(json.loads(line[6:]).get("tokens_predicted", tokens))
        return tokens

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Ours:
    def __init__(self, log_dir: Path) -> None:
        self.inference = free_port()
        self.management = free_port()
        cli = [sys.executable, "-m", "paddler_server.cli"]
        self.balancer = subprocess.Popen(
            [
                *cli,
                "balancer",
                "--inference-addr",
                f"127.0.0.1:{self.inference}",
                "--management-addr",
                f"127.0.0.1:{self.management}",
            ],
            stdout=(log_dir / "balancer.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_http(f"http://127.0.0.1:{self.management}/health")
        self.agent = subprocess.Popen(
            [
                *cli,
                "agent",
                "--management-addr",
                f"127.0.0.1:{self.management}",
                "--slots",
                str(SLOTS),
                "--no-repack",
            ],
            stdout=(log_dir / "agent.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        parameters = attrs.evolve(
            InferenceParameters.deterministic(),
            n_batch=N_BATCH,
            context_size=CONTEXT,
            k_cache_dtype=KvCacheDtype.F16,
            v_cache_dtype=KvCacheDtype.F16,
        )
        state = BalancerDesiredState(
            model=LocalToAgentModel(str(model_path())), inference_parameters=parameters
        )
        management = f"http://127.0.0.1:{self.management}"
        response = httpx.put(
            f"{management}/api/v1/balancer_desired_state", content=converter.dumps(state)
        )
        response.raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            agents = httpx.get(f"{management}/api/v1/agents").json()["agents"]
            if agents and agents[0]["slots_total"] == SLOTS:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the agent did not load the model")
        self.worker = children(self.agent.pid)[0]

    async def one(self, client: httpx.AsyncClient, prompt: str, arrivals: list[float]) -> int:
        url = f"http://127.0.0.1:{self.inference}/api/v1/continue_from_raw_prompt"
        body = {"raw_prompt": prompt, "max_tokens": NEW_TOKENS}
        tokens = 0
        async with client.stream("POST", url, json=body) as response:
            async for line in response.aiter_lines():
                if '"ContentToken"' in line:
                    arrivals.append(time.perf_counter())
                elif '"Done"' in line:
                    response = json.loads(line)["Response"]["response"]
                    done = response["GeneratedToken"]["Done"]["usage"]
                    tokens = int(done["content_tokens"])
        return tokens

    def stop(self) -> None:
        for process in (self.agent, self.balancer):
            process.terminate()
            process.wait(15)


@attrs.frozen
class Block:
    tokens: int
    seconds: float
    #: Tokens/s while every client had a request going: from the moment the last client got
    #: its first token to the moment the first client got its last one. The ramp and the tail
    #: (fewer streams than clients) are left out, as llama-batched-bench's S_TG leaves out its
    #: prompts; the gaps between one client's requests and their prompts stay in.
    steady: float


async def block(
    one: Callable[[httpx.AsyncClient, str, list[float]], Awaitable[int]],
    prompts: Sequence[Sequence[str]],
) -> Block:
    """Each inner list is one client's requests, sent one after another."""
    tokens = 0
    arrivals: list[list[float]] = [[] for _ in prompts]

    async def client_loop(client: httpx.AsyncClient, index: int) -> None:
        nonlocal tokens
        for prompt in prompts[index]:
            generated = await one(client, prompt, arrivals[index])  # not `tokens += await`:
            tokens += generated  # that reads tokens before the await and loses the others'

    # A new connection per request on both sides: llama-server closes idle keep-alive
    # connections after a few seconds, which a pooled client would hit mid-run.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for index in range(len(prompts)):
                tg.start_soon(client_loop, client, index)
        seconds = time.perf_counter() - started
    start = max(times[0] for times in arrivals)
    end = min(times[-1] for times in arrivals)
    within = sum(1 for times in arrivals for t in times if start < t <= end)
    return Block(tokens, seconds, within / (end - start) if end > start else 0.0)


#: What `raw_prompt` comes to with the demo model's tokenizer (30-32 tokens): the ceiling's
#: sequences start from a prompt of the same length as the served requests.
PROMPT_TOKENS = 32


def batched_bench(binary: Path, sequences: int) -> float:
    """llama-batched-bench's generation tokens/s (S_TG) at ``sequences`` sequences: run twice
    in one invocation, and the second (warm) figure is the one kept."""
    output = subprocess.run(
        [
            str(binary),
            *same_llama_arguments(),
            "-npp",
            str(PROMPT_TOKENS),
            "-ntg",
            str(NEW_TOKENS),
            "-npl",
            f"{sequences},{sequences}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rates: list[float] = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[2] == str(sequences):
            rates.append(float(cells[7]))
    if not rates:
        raise RuntimeError(f"no S_TG row for {sequences} sequences in:\n{output}")
    return rates[-1]


async def main(concurrencies: Sequence[int], repeats: int, per_client: int) -> None:
    binaries = build()
    print(f"model: {model_path().name}, threads: {threads()}, cpus: {os.cpu_count()}, ", end="")
    print(f"slots: {SLOTS}, F16 KV, greedy, {NEW_TOKENS} new tokens, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        server = LlamaServer(binaries["llama-server"], Path(tmp) / "llama-server.log")
        ours = Ours(Path(tmp))
        try:
            warm = [[raw_prompt(0, 0)]]
            await block(server.one, warm)
            await block(ours.one, warm)
            rows = []
            agent_cpu = worker_cpu = balancer_cpu = 0.0
            our_tokens = 0
            run = 1
            for c in concurrencies:
                totals = {"server": [0, 0.0], "ours": [0, 0.0]}
                steady: dict[str, list[float]] = {"server": [], "ours": []}
                bench_rates: list[float] = []
                for _ in range(repeats):
                    prompts = [
                        [raw_prompt(i * per_client + j, run) for j in range(per_client)]
                        for i in range(c)
                    ]
                    run += 1
                    for name, side in (("server", server), ("ours", ours)):
                        await anyio.sleep(0.5)  # let the other side go idle
                        before = (
                            cpu_seconds(ours.agent.pid),
                            cpu_seconds(ours.worker),
                            cpu_seconds(ours.balancer.pid),
                        )
                        measured = await block(side.one, prompts)
                        tokens, seconds = measured.tokens, measured.seconds
                        steady[name].append(measured.steady)
                        if name == "ours":
                            agent_cpu += cpu_seconds(ours.agent.pid) - before[0]
                            worker_cpu += cpu_seconds(ours.worker) - before[1]
                            balancer_cpu += cpu_seconds(ours.balancer.pid) - before[2]
                            our_tokens += tokens
                        totals[name][0] += tokens
                        totals[name][1] += seconds
                    # The C++ ceiling in the same alternation, so machine drift hits it too.
                    await anyio.sleep(0.5)
                    bench_rates.append(
                        await anyio.to_thread.run_sync(
                            batched_bench, binaries["llama-batched-bench"], c
                        )
                    )
                s_rate = totals["server"][0] / totals["server"][1]
                o_rate = totals["ours"][0] / totals["ours"][1]
                rows.append(
                    (
                        c,
                        s_rate,
                        o_rate,
                        statistics.fmean(steady["server"]),
                        statistics.fmean(steady["ours"]),
                        statistics.fmean(bench_rates),
                    )
                )
            memory = (rss_mib(ours.agent.pid), rss_mib(ours.worker), rss_mib(server.process.pid))
        finally:
            ours.stop()
            server.stop()
    print(
        f"\n{'':>7} {'whole blocks':^28} {'steady (every stream busy)':^28}"
        f" {'batched-bench':>14} {'ours steady':>11}"
    )
    print(
        f"{'streams':>7} {'llama-server':>13} {'ours':>7} {'ratio':>6}"
        f" {'llama-server':>13} {'ours':>7} {'ratio':>6} {'S_TG':>14} {'/ bench':>11}"
    )
    for c, s_rate, o_rate, s_steady, o_steady, bench in rows:
        print(
            f"{c:>7} {s_rate:>13.1f} {o_rate:>7.1f} {o_rate / s_rate:>6.2f}"
            f" {s_steady:>13.1f} {o_steady:>7.1f} {o_steady / s_steady:>6.2f}"
            f" {bench:>14.1f} {o_steady / bench:>11.2f}"
        )
    print("(tokens/s, aggregate over the streams; whole blocks include the ramp and the tail;")
    print(" batched-bench: S_TG, no HTTP, run after each pair of blocks at as many sequences)")
    print(
        f"\nagent CPU s per generated token: {agent_cpu / our_tokens * 1000:.2f} ms; "
        f"worker: {worker_cpu / our_tokens * 1000:.2f} ms; "
        f"balancer: {balancer_cpu / our_tokens * 1000:.2f} ms"
    )
    print(
        f"resident memory: agent {memory[0]:.0f} MiB, worker {memory[1]:.0f} MiB, "
        f"llama-server {memory[2]:.0f} MiB"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeats", type=int, default=2, help="alternating blocks per row")
    parser.add_argument("--per-client", type=int, default=2, help="requests per client and block")
    args = parser.parse_args()
    anyio.run(main, args.concurrency, args.repeats, args.per_client)
