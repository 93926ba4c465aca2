"""Streams that survive their agent (``docs/failover.md``), on real ``paddler`` subprocesses.

Two one-slot agents serve the demo model greedily. An agent *process* is SIGKILLed while it
serves a request: after some tokens (the stream must go on, on the other agent, and equal an
uninterrupted run), or before its first token (the request must be served once, elsewhere).
Kills are ordered by events, never by sleeping: the victim is frozen (SIGSTOP) once the client
has the tokens the test waits for, or once the balancer shows the request on it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_cluster import Cluster, conversation, running_cluster, tokens_of

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ROUTE = "/api/v1/continue_from_conversation_history"
#: Long enough that the victim is still generating when it is frozen after a few tokens.
COUNTING = conversation("Count from 1 to 100, one number per line.", max_tokens=160)
SHORT = conversation("Say hello.", max_tokens=16)
TOKENS_BEFORE_KILL = 5


class Streamer(threading.Thread):
    """Reads one NDJSON response in the background; ``reached`` is set once ``wanted``
    content tokens (or the end) arrived."""

    def __init__(
        self, url: str, body: dict[str, Any], wanted: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.wanted, self.headers = url, body, wanted, headers or {}
        self.lines: list[dict[str, Any]] = []
        self.reached = threading.Event()

    def run(self) -> None:
        try:
            with httpx.stream(
                "POST", self.url, json=self.body, headers=self.headers, timeout=120.0
            ) as response:
                for line in response.iter_lines():
                    if line.strip():
                        self.lines.append(json.loads(line))
                        if len(tokens_of_lines(self.lines)) >= self.wanted:
                            self.reached.set()
        finally:
            self.reached.set()

    def finish(self) -> list[dict[str, Any]]:
        self.join(120)
        assert not self.is_alive(), "the stream did not end"
        return self.lines


def tokens_of_lines(lines: list[dict[str, Any]]) -> list[str]:
    return [t for line in lines if (t := _content(line)) is not None]


def _content(line: dict[str, Any]) -> str | None:
    token = line.get("Response", {}).get("response", {}).get("GeneratedToken")
    if isinstance(token, dict) and "ContentToken" in token:
        return str(token["ContentToken"])
    return None


def done_usage(lines: list[dict[str, Any]]) -> dict[str, Any]:
    dones = []
    for line in lines:
        token = line.get("Response", {}).get("response", {}).get("GeneratedToken")
        if isinstance(token, dict) and "Done" in token:
            dones.append(dict(token["Done"]["usage"]))
    assert len(dones) == 1, lines[-3:]
    return dones[0]


def agents_serving(lines: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for line in lines:
        name = line.get("Response", {}).get("generated_by")
        if name and (not names or names[-1] != name):
            names.append(name)
    return names


def counter(cluster: Cluster, name: str) -> float:
    text = cluster.http.get(f"{cluster.management_url}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith(f"paddler_{name}_total "))
    return float(line.split()[-1])


def balancer_busy_on(cluster: Cluster, agent: str) -> int:
    """Requests the balancer has dispatched to ``agent`` (its own count, not the agent's)."""
    text = cluster.http.get(f"{cluster.management_url}/metrics").text
    for line in text.splitlines():
        if line.startswith("paddler_agent_slots_processing{") and f'agent_name="{agent}"' in line:
            return int(float(line.split()[-1]))
    return 0


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout  # a safety net, not a timing assertion
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def freeze_then_kill(cluster: Cluster, name: str) -> None:
    process = cluster.agents[name]
    os.kill(process.popen.pid, signal.SIGSTOP)
    process.kill()  # SIGKILL: the agent process dies without a word on its socket


def replace_agent(cluster: Cluster, name: str) -> None:
    cluster.agents.pop(name).stop()
    cluster.start_agent(name, 1)
    cluster.wait_agents(
        lambda agents: sorted(a["name"] for a in agents if a["slots_total"] > 0) == ["a", "b"],
        120,
        f"agent {name} to be back",
    )


def uninterrupted(cluster: Cluster, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = cluster.http.post(f"{cluster.inference_url}{ROUTE}", json=body, timeout=120.0)
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return tokens_of(lines), done_usage(lines)


def kill_mid_stream(
    cluster: Cluster, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Stream COUNTING; after TOKENS_BEFORE_KILL tokens, kill the agent serving it."""
    streamer = Streamer(f"{cluster.inference_url}{ROUTE}", COUNTING, TOKENS_BEFORE_KILL, headers)
    streamer.start()
    assert streamer.reached.wait(120), cluster.logs()
    victim = streamer.lines[0]["Response"]["generated_by"]
    freeze_then_kill(cluster, victim)
    assert all("Done" not in json.dumps(line) for line in streamer.lines), "ended before the kill"
    lines = streamer.finish()
    replace_agent(cluster, victim)
    return lines


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("recovery"), model_path, agents=[("a", 1), ("b", 1)]
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def references(cluster: Cluster) -> dict[str, tuple[str, dict[str, Any]]]:
    return {"counting": uninterrupted(cluster, COUNTING), "short": uninterrupted(cluster, SHORT)}


def test_stream_resumes_on_another_agent_and_equals_the_uninterrupted_run(
    cluster: Cluster, references: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    text, usage = references["counting"]
    resumed = counter(cluster, "requests_resumed")
    lines = kill_mid_stream(cluster)
    assert not any("Error" in line for line in lines), lines[-2:]
    assert tokens_of(lines) == text  # one uninterrupted stream, greedy, nothing twice
    assert len(agents_serving(lines)) == 2
    got = done_usage(lines)
    assert got["prompt_tokens"] == usage["prompt_tokens"]
    assert got["content_tokens"] == usage["content_tokens"]  # counts what went out before
    assert counter(cluster, "requests_resumed") == resumed + 1


def test_agent_killed_before_the_first_token_is_retried_and_answers_once(
    cluster: Cluster, references: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    text, usage = references["short"]
    retried = counter(cluster, "requests_retried")
    # Keep one agent busy, so the request under test can only go to the other one.
    holder = Streamer(f"{cluster.inference_url}{ROUTE}", COUNTING)
    holder.start()
    assert holder.reached.wait(120), cluster.logs()
    busy = holder.lines[0]["Response"]["generated_by"]
    victim = "b" if busy == "a" else "a"
    os.kill(cluster.agents[victim].popen.pid, signal.SIGSTOP)  # it gets the request, says nothing
    request = Streamer(f"{cluster.inference_url}{ROUTE}", SHORT)
    request.start()
    wait_for(lambda: balancer_busy_on(cluster, victim) == 1, f"the request on {victim}")
    cluster.agents[victim].kill()
    lines = request.finish()
    holder.finish()
    replace_agent(cluster, victim)
    assert tokens_of(lines) == text
    assert agents_serving(lines) == [busy]
    assert done_usage(lines)["content_tokens"] == usage["content_tokens"]
    assert counter(cluster, "requests_retried") == retried + 1


def test_opt_out_header_gets_the_502(cluster: Cluster) -> None:
    resumed = counter(cluster, "requests_resumed")
    lines = kill_mid_stream(cluster, headers={"Paddler-Stream-Recovery": "off"})
    assert lines[-1]["Error"]["error"]["code"] == 502
    assert counter(cluster, "requests_resumed") == resumed


def test_no_stream_recovery_flag_keeps_the_502(tmp_path: Path, model_path: Path) -> None:
    cluster = Cluster(tmp_path, model_path)
    try:
        cluster.start_balancer("--no-stream-recovery")
        cluster.load_model()
        cluster.start_agent("a", 1)
        cluster.start_agent("b", 1)
        cluster.wait_ready(2)
        lines = kill_mid_stream(cluster)
        assert lines[-1]["Error"]["error"]["code"] == 502
        assert counter(cluster, "requests_resumed") == 0
    finally:
        cluster.stop()
