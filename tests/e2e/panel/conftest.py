"""A real cluster (balancer + agent CLI subprocesses) and a real Chromium for the panel tests.

One cluster and one browser per module keep the browser tests fast; each test gets its own
page. Waiting is done on the management SSE stream or with Playwright's auto-waiting
``expect``, never by sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
PADDLER = [sys.executable, "-c", "from paddler_server.cli import main; main()"]
#: Context size the cluster starts with; the model-page test swaps away from it.
INITIAL_CONTEXT_SIZE = 2048


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def desired_state(model_path: Path, *, context_size: int) -> dict[str, Any]:
    """A full BalancerDesiredState (wire JSON) serving the demo model deterministically."""
    return {
        "chat_template_override": None,
        "use_chat_template_override": False,
        "model": {"LocalToAgent": str(model_path)},
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
            "penalty_last_n": -1,
            "penalty_presence": 0.0,
            "penalty_repeat": 1.0,
            "pooling_type": "Last",
            "temperature": 0.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }


class Cluster:
    """A `paddler balancer` with the admin panel, and the agents started for it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.management_addr = f"127.0.0.1:{free_port()}"
        self.inference_addr = f"127.0.0.1:{free_port()}"
        self.panel_addr = f"127.0.0.1:{free_port()}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, IO[bytes]] = {}
        self.initial_context_size = INITIAL_CONTEXT_SIZE

    @property
    def panel_url(self) -> str:
        return f"http://{self.panel_addr}"

    @property
    def management_url(self) -> str:
        return f"http://{self.management_addr}"

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [*PADDLER, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
        )
        self.processes[name] = process
        self.logs[name] = log
        return process

    def log_tail(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]

    def start_balancer(self) -> None:
        self.spawn(
            "balancer",
            "balancer",
            "--management-addr",
            self.management_addr,
            "--inference-addr",
            self.inference_addr,
            "--web-admin-panel-addr",
            self.panel_addr,
            "--state-database",
            # A file, so the desired state survives the restart test.
            (self.workdir / "state.json").as_uri(),
        )
        for url in (self.management_url, self.panel_url):
            self.wait_healthy(url)

    def wait_healthy(self, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            balancer = self.processes["balancer"]
            if balancer.poll() is not None:
                pytest.fail(f"balancer exited early:\n{self.log_tail('balancer')}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).text == "OK":
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{url} never became healthy:\n{self.log_tail('balancer')}")
            # The server is starting; connecting again is how we learn it listens.
            time.sleep(0.1)

    def start_agent(self, name: str, slots: int) -> subprocess.Popen[bytes]:
        return self.spawn(
            name,
            "agent",
            "--management-addr",
            self.management_addr,
            "--name",
            name,
            "--slots",
            str(slots),
        )

    def put_desired_state(self, state: dict[str, Any]) -> None:
        response = httpx.put(f"{self.management_url}/api/v1/balancer_desired_state", json=state)
        assert response.status_code == 204, response.text

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.management_url}{path}", timeout=5.0).json()

    def wait_agents(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Follow the agents SSE stream until ``predicate(agents)`` holds."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        try:
            with httpx.stream(
                "GET",
                f"{self.management_url}/api/v1/agents/stream",
                timeout=httpx.Timeout(5.0, read=timeout),
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        last = json.loads(line[5:])["agents"]
                        if predicate(last):
                            return last
                    if time.monotonic() > deadline:
                        break
        except httpx.ReadTimeout:
            pass
        logs = "\n".join(f"--- {n}\n{self.log_tail(n)}" for n in self.processes)
        pytest.fail(f"agents never matched; last snapshot {last}\n{logs}")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.logs.pop(name).close()

    def generate_in_background(self, prompt: str, max_tokens: int) -> threading.Thread:
        """Stream one chat answer over HTTP NDJSON on a thread (load for the live views)."""
        url = f"http://{self.inference_addr}/api/v1/continue_from_conversation_history"
        body = {
            "add_generation_prompt": True,
            "conversation_history": [{"role": "user", "content": prompt}],
            "enable_thinking": False,
            "max_tokens": max_tokens,
        }

        def run() -> None:
            with httpx.stream("POST", url, json=body, timeout=60.0) as response:
                for _line in response.iter_lines():
                    pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def wait_ready(self, name: str, slots: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until agent ``name`` has applied the state and reports ``slots`` slots."""
        return self.wait_agents(
            lambda agents: any(
                a["name"] == name
                and a["slots_total"] == slots
                and a["state_application_status"] == "Applied"
                for a in agents
            ),
            timeout,
        )

    def close(self) -> None:
        agents = [n for n in self.processes if n != "balancer"]
        for name in [*agents, "balancer"]:
            if name in self.processes:
                self.stop(name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("panel-cluster"))
    try:
        cluster.start_balancer()
        cluster.put_desired_state(desired_state(model_path, context_size=INITIAL_CONTEXT_SIZE))
        cluster.start_agent("panel-agent", slots=2)
        cluster.wait_ready("panel-agent", 2)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian Chromium is missing: apt-get install -y chromium (scripts/bootstrap)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 860},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A fresh tab; JavaScript errors on it fail the test."""
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def save_screenshot() -> Callable[[Any, str], None]:
    """Save a full-page screenshot into docs/screenshots/ (the docs show them)."""

    def save(page: Any, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar belongs at the top
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

    return save
