"""SIGTERM with OpenAI streams open: each ends with an error event and ``[DONE]``, and a
request still waiting in the buffer gets a 503, before the process exits."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_cluster import Cluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Reader(threading.Thread):
    """One OpenAI request, read to its end (status and every SSE line or the JSON body)."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.status = 0
        self.lines: list[str] = []
        self.text = ""

    def run(self) -> None:
        with httpx.stream("POST", self.url, json=self.body, timeout=60) as response:
            self.status = response.status_code
            for line in response.iter_lines():
                if line:
                    self.lines.append(line)
        self.text = "\n".join(self.lines)


def test_sigterm_ends_openai_streams_with_an_error_event_and_done(
    tmp_path: Path, model_path: Path
) -> None:
    port = free_port()
    cluster = Cluster(tmp_path, model_path, compat_openai_addr=f"127.0.0.1:{port}")
    try:
        cluster.start_balancer()
        cluster.load_model(context_size=4096)
        cluster.start_agent("only", 1)
        cluster.wait_ready(1)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        messages = [{"role": "user", "content": "Count from 1 to 3000."}]
        streaming = Reader(
            url, {"model": "m", "messages": messages, "max_tokens": 3000, "stream": True}
        )
        streaming.start()
        wait_until(lambda: len(streaming.lines) >= 3, 60, "the stream never started")
        buffered = Reader(url, {"model": "m", "messages": messages, "max_tokens": 4})
        buffered.start()
        wait_until(
            lambda: (
                cluster.http.get(f"{cluster.management_url}/api/v1/buffered_requests").json()[
                    "buffered_requests_current"
                ]
                == 1
            ),
            30,
            "the second request was not buffered",
        )
        assert cluster.balancer is not None
        assert cluster.balancer.shut_down_cleanly()
        streaming.join(10)
        buffered.join(10)
        assert streaming.lines[-1] == "data: [DONE]"
        error = json.loads(streaming.lines[-2].removeprefix("data: "))
        assert "shutting down" in error["error"]["message"]
        assert buffered.status == 503
        assert "shutting down" in json.loads(buffered.text)["error"]["message"].lower()
    finally:
        cluster.stop()
