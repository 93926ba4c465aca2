"""Key priorities with the real model: one agent with one slot, a busy slot, three
low-priority requests waiting, then a high-priority one. The high one is served first, the
low ones in their order after it, and every one finishes.

The slot is held by a request that cannot end on its own (a grammar with no accepting state)
until the test closes its socket.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e_cluster import Cluster, conversation, is_done, running_cluster

NEVER_ENDING = {"type": "gbnf", "grammar": 'root ::= "ab" root', "root": "root"}
KEYS = """
[[keys]]
name = "batch"
key = "batch-key"
priority = 0

[[keys]]
name = "interactive"
key = "interactive-key"
priority = 10
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("priorities")
    keys = tmp / "keys.toml"
    keys.write_text(KEYS)
    with running_cluster(
        tmp,
        model_path,
        agents=[("solo", 1)],
        api_keys_file=keys,
        buffered_request_timeout=120000,
    ) as cluster:
        yield cluster


def request(request_id: str, params: dict[str, Any], kind: str) -> str:
    return json.dumps({"Request": {"id": request_id, "request": {kind: params}}})


def short(request_id: str) -> str:
    return request(request_id, conversation(max_tokens=4), "ContinueFromConversationHistory")


def open_socket(cluster: Cluster, key: str) -> Any:
    return connect(
        cluster.inference_socket_url, additional_headers={"authorization": f"Bearer {key}"}
    )


def wait_buffered(cluster: Cluster, count: int) -> None:
    with cluster.http.stream(
        "GET",
        f"{cluster.management_url}/api/v1/buffered_requests/stream",
        timeout=httpx.Timeout(5.0, read=60.0),
    ) as response:
        for line in response.iter_lines():
            if (
                line.startswith("data:")
                and json.loads(line[5:])["buffered_requests_current"] == count
            ):
                return
    raise AssertionError(f"never saw {count} buffered requests")


async def collect_done(socket: ClientConnection, expected: int, done: list[str]) -> None:
    """Append each request id to ``done`` when its terminal ``Done`` arrives."""
    while expected:
        message = json.loads(await socket.recv())
        assert "Error" not in message, message
        if is_done(message):
            done.append(message["Response"]["request_id"])
            expected -= 1


@pytest.mark.anyio
async def test_high_priority_goes_first_and_the_low_ones_still_finish(cluster: Cluster) -> None:
    """With the slot busy, a priority-10 request sent after three priority-0 ones is served
    first; the three follow in arrival order and finish (FIFO would serve "high" last)."""
    done: list[str] = []
    async with (
        open_socket(cluster, "batch-key") as low,
        open_socket(cluster, "interactive-key") as high,
    ):
        async with open_socket(cluster, "batch-key") as holder:
            params = {"raw_prompt": "Go:", "max_tokens": 100000, "grammar": NEVER_ENDING}
            await holder.send(request("hold", params, "ContinueFromRawPrompt"))
            with anyio.fail_after(60):
                first = json.loads(await holder.recv())
            assert first["Response"]["request_id"] == "hold"
            for request_id in ("low-1", "low-2", "low-3"):
                await low.send(short(request_id))
            wait_buffered(cluster, 3)
            await high.send(short("high"))
            wait_buffered(cluster, 4)
        # The holder's socket is closed: its request stops and the slot goes to the buffer.
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(collect_done, low, 3, done)
                tg.start_soon(collect_done, high, 1, done)
    assert done == ["high", "low-1", "low-2", "low-3"]
    metrics = cluster.http.get(f"{cluster.management_url}/metrics").text
    assert 'paddler_key_requests_total{key_name="batch",outcome="ok"} 3.0' in metrics
    assert 'paddler_key_requests_total{key_name="interactive",outcome="ok"} 1.0' in metrics
    assert 'paddler_key_requests_total{key_name="batch",outcome="cancelled"} 1.0' in metrics
