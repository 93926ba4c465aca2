"""A cluster of real ``paddler`` CLI subprocesses for end-to-end tests.

Ports are picked by the OS (bind to port 0, read it, release it). Waiting is done on the
management API's live state (agents snapshots), never by sleeping and hoping.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT = 30.0
MODEL_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deterministic_parameters() -> dict[str, Any]:
    """InferenceParameters (spec §5.1) with the deterministic preset and a small context."""
    return {
        "n_batch": 512,
        "context_size": 2048,
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
        "temperature": 0.0,
        "top_k": 1,
        "top_p": 1.0,
    }


def desired_state(model_path: Path | None, **parameters: Any) -> dict[str, Any]:
    model: Any = "None" if model_path is None else {"LocalToAgent": str(model_path)}
    return {
        "chat_template_override": None,
        "use_chat_template_override": False,
        "model": model,
        "multimodal_projection": "None",
        "inference_parameters": {**deterministic_parameters(), **parameters},
    }


#: What ``paddler`` logs when SIGTERM's shutdown deadline ends work still running (``_run.py``).
SHUTDOWN_DEADLINE_LOG = "shutdown deadline reached"


class Process:
    """One CLI subprocess; its stderr goes to a log file shown when a test fails."""

    def __init__(
        self, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "paddler_server.cli", *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout``, a safety net); returns the exit code."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def shut_down_cleanly(self) -> bool:
        """SIGTERM: the process finished its work and exited 0 by itself, before its own
        shutdown deadline (it logs when it reaches that deadline instead)."""
        return self.terminate() == 0 and SHUTDOWN_DEADLINE_LOG not in self.log()

    def kill(self) -> None:
        if self.alive:
            self.popen.kill()
            self.popen.wait()

    def stop(self) -> None:
        self.terminate(timeout=6.0)
        self._log.close()


class Cluster:
    """One balancer and its agents, all real subprocesses."""

    def __init__(self, tmp: Path, model_path: Path, **balancer_flags: Any) -> None:
        self.tmp = tmp
        self.model_path = model_path
        self.inference_port = free_port()
        self.management_port = free_port()
        self.balancer_flags = balancer_flags
        #: Extra environment of the balancer process (on top of this one's).
        self.balancer_env: dict[str, str] = {}
        self.balancer: Process | None = None
        self.agents: dict[str, Process] = {}
        self.http = httpx.Client(timeout=30.0)

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.inference_port}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def inference_socket_url(self) -> str:
        return f"ws://127.0.0.1:{self.inference_port}/api/v1/inference_socket"

    def start_balancer(self, *extra: str) -> Process:
        args = [
            "balancer",
            "--inference-addr",
            f"127.0.0.1:{self.inference_port}",
            "--management-addr",
            f"127.0.0.1:{self.management_port}",
        ]
        for flag, value in self.balancer_flags.items():
            args += [f"--{flag.replace('_', '-')}", str(value)]
        args += list(extra)
        log = self.tmp / f"balancer-{len(list(self.tmp.glob('balancer-*')))}.log"
        self.balancer = Process(args, log, self.balancer_env)
        wait_until(
            lambda: all(self._healthy(url) for url in self.service_urls),
            STARTUP_TIMEOUT,
            "balancer did not become healthy",
            self.balancer,
        )
        return self.balancer

    @property
    def service_urls(self) -> list[str]:
        """The balancer's services (the optional ones when their flag is given)."""
        urls = [self.management_url, self.inference_url]
        for flag in ("compat_openai_addr", "web_admin_panel_addr"):
            if self.balancer_flags.get(flag) is not None:
                urls.append(f"http://{self.balancer_flags[flag]}")
        return urls

    def start_agent(self, name: str, slots: int = 1, *, pool: str | None = None) -> Process:
        """An agent subprocess; ``pool``: the model pool it joins (``--pool``)."""
        args = [
            "agent",
            "--management-addr",
            f"127.0.0.1:{self.management_port}",
            "--slots",
            str(slots),
            "--name",
            name,
            # One llama.cpp thread each: the suite runs several engines at once on 2 cores, and
            # llama.cpp's spinning threads slow each other down many times when oversubscribed.
            "--threads",
            "1",
        ]
        if pool is not None:
            args += ["--pool", pool]
        process = Process(args, self.tmp / f"agent-{name}.log")
        self.agents[name] = process
        return process

    def _healthy(self, url: str) -> bool:
        try:
            return self.http.get(f"{url}/health", timeout=2.0).text == "OK"
        except httpx.HTTPError:
            return False

    def put_state(self, state: dict[str, Any]) -> httpx.Response:
        return self.http.put(f"{self.management_url}/api/v1/balancer_desired_state", json=state)

    def load_model(self, **parameters: Any) -> None:
        response = self.put_state(desired_state(self.model_path, **parameters))
        assert response.status_code == 204, response.text

    def agents_snapshot(self) -> list[dict[str, Any]]:
        agents: list[dict[str, Any]] = self.http.get(f"{self.management_url}/api/v1/agents").json()[
            "agents"
        ]
        return agents

    def wait_agents(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str
    ) -> list[dict[str, Any]]:
        """Watch the agents SSE stream until ``predicate(agents)`` holds."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                with self.http.stream(
                    "GET",
                    f"{self.management_url}/api/v1/agents/stream",
                    timeout=httpx.Timeout(5.0, read=12.0),
                ) as response:
                    for line in response.iter_lines():
                        if not line.startswith("data:"):
                            if time.monotonic() > deadline:
                                break
                            continue
                        last = json.loads(line[5:])["agents"]
                        if predicate(last):
                            return last
                        if time.monotonic() > deadline:
                            break
            except httpx.HTTPError:
                if self.balancer is not None and not self.balancer.alive:
                    raise AssertionError("balancer died:\n" + self.balancer.log()) from None
                time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last agents: {last}\n{self.logs()}")

    def wait_ready(
        self, count: int, slots: int | None = None, timeout: float = MODEL_TIMEOUT
    ) -> list[dict[str, Any]]:
        def ready(agents: list[dict[str, Any]]) -> bool:
            loaded = [
                a
                for a in agents
                if a["slots_total"] > 0 and (slots is None or a["slots_total"] == slots)
            ]
            return len(loaded) >= count

        return self.wait_agents(ready, timeout, f"{count} agents with slots")

    def wait_idle(self, timeout: float = 30.0) -> None:
        self.wait_agents(
            lambda agents: all(a["slots_processing"] == 0 for a in agents),
            timeout,
            "every slot to be free",
        )

    def logs(self) -> str:
        parts = []
        if self.balancer is not None:
            parts.append("--- balancer ---\n" + self.balancer.log()[-4000:])
        for name, agent in self.agents.items():
            parts.append(f"--- agent {name} ---\n" + agent.log()[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        if self.balancer is not None:
            self.balancer.stop()
        self.http.close()


def wait_until(
    predicate: Callable[[], bool], timeout: float, message: str, process: Process | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and not process.alive:
            raise AssertionError(f"{message}: process exited\n{process.log()}")
        time.sleep(0.05)
    raise AssertionError(message + ("" if process is None else "\n" + process.log()))


@contextmanager
def running_cluster(
    tmp: Path, model_path: Path, *, agents: Sequence[tuple[str, int]], **balancer_flags: Any
) -> Iterator[Cluster]:
    """A balancer plus agents ``(name, slots)``, with the demo model loaded on all of them."""
    cluster = Cluster(tmp, model_path, **balancer_flags)
    try:
        cluster.start_balancer()
        cluster.load_model()
        for name, slots in agents:
            cluster.start_agent(name, slots)
        cluster.wait_ready(len(agents))
        yield cluster
    finally:
        cluster.stop()


def conversation(text: str = "Say hello.", max_tokens: int = 16, **extra: Any) -> dict[str, Any]:
    return {
        "add_generation_prompt": True,
        "conversation_history": [{"role": "user", "content": text}],
        "enable_thinking": False,
        "max_tokens": max_tokens,
        **extra,
    }


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def tokens_of(lines: Sequence[dict[str, Any]]) -> str:
    text = []
    for line in lines:
        response = line.get("Response", {}).get("response", {})
        token = response.get("GeneratedToken") if isinstance(response, dict) else None
        if isinstance(token, dict) and "ContentToken" in token:
            text.append(token["ContentToken"])
    return "".join(text)


def is_done(line: dict[str, Any]) -> bool:
    response = line.get("Response", {}).get("response", {})
    token = response.get("GeneratedToken") if isinstance(response, dict) else None
    return isinstance(token, dict) and "Done" in token
