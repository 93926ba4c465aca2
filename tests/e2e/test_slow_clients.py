"""A client that stops reading is cut off after the write deadline; its slot serves others.

The stalled clients are raw sockets with a tiny receive buffer that send a request for a
long generation and then read nothing; the balancer bounds each connection's kernel send
buffer, so its writes back up after a few hundred tokens.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_cluster import Cluster, conversation, is_done, ndjson, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.model]

WRITE_TIMEOUT_MS = 1500
COUNTING = "<|im_start|>user\nCount from 1 to 5000.<|im_end|>\n<|im_start|>assistant\n1, 2, 3,"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    openai_port = socket.socket()
    openai_port.bind(("127.0.0.1", 0))
    port = openai_port.getsockname()[1]
    openai_port.close()
    running = Cluster(
        tmp_path_factory.mktemp("slow-clients"),
        model_path,
        client_write_timeout=WRITE_TIMEOUT_MS,
        compat_openai_addr=f"127.0.0.1:{port}",
    )
    try:
        running.start_balancer()
        running.load_model(context_size=8192)  # room for a long answer
        running.start_agent("only", 1)  # one slot: a request after a cut proves it was freed
        running.wait_ready(1)
        yield running
    finally:
        running.stop()


def stalled_request(port: int, path: str, body: dict[str, Any]) -> socket.socket:
    """Send a POST and never read the answer (the socket stays open)."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    client.connect(("127.0.0.1", port))
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    client.sendall(head + payload)
    return client


def cut_count(cluster: Cluster) -> float:
    text = cluster.http.get(f"{cluster.management_url}/metrics").text
    for line in text.splitlines():
        if line.startswith("paddler_slow_clients_cut_total"):
            return float(line.split()[-1])
    raise AssertionError("paddler_slow_clients_cut_total is missing from /metrics")


def assert_slot_serves_again(cluster: Cluster) -> None:
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation(max_tokens=4),
        timeout=60,
    )
    assert response.status_code == 200
    assert is_done(ndjson(response)[-1])
    (agent,) = cluster.agents_snapshot()
    assert agent["slots_total"] == 1 and agent["slots_processing"] == 0


@pytest.mark.parametrize(
    ("service", "path", "body"),
    [
        (
            "inference",
            "/api/v1/continue_from_raw_prompt",
            {"raw_prompt": COUNTING, "max_tokens": 7000},
        ),
        (
            "openai",
            "/v1/completions",
            {"model": "any", "prompt": COUNTING, "max_tokens": 7000, "stream": True},
        ),
    ],
)
def test_a_client_that_stops_reading_is_cut_off_and_frees_its_slot(
    cluster: Cluster, service: str, path: str, body: dict[str, Any]
) -> None:
    before = cut_count(cluster)
    port = (
        cluster.inference_port
        if service == "inference"
        else int(cluster.balancer_flags["compat_openai_addr"].rsplit(":", 1)[1])
    )
    stalled = stalled_request(port, path, body)
    try:
        wait_until(
            lambda: cut_count(cluster) > before,
            90,
            "the stalled client was never cut off",
            cluster.balancer,
        )
        assert_slot_serves_again(cluster)
    finally:
        stalled.close()
    assert cluster.balancer is not None and cluster.balancer.alive


def test_a_slow_but_reading_client_is_not_cut_off(cluster: Cluster) -> None:
    """Reading a little at a time, with pauses shorter than the deadline, is fine."""
    before = cut_count(cluster)
    lines = []
    with httpx.stream(
        "POST",
        f"{cluster.inference_url}/api/v1/continue_from_raw_prompt",
        json={"raw_prompt": COUNTING, "max_tokens": 40},
        timeout=60,
    ) as response:
        for line in response.iter_lines():
            if line:
                lines.append(json.loads(line))
                time.sleep(0.1)  # 40 lines: 4 s in all, longer than the deadline
    assert is_done(lines[-1])
    assert cut_count(cluster) == before
