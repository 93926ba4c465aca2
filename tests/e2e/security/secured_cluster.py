"""Clusters of real ``paddler`` subprocesses with keys, join tokens or TLS turned on.

``SecuredCluster`` is ``e2e_cluster.Cluster`` whose balancer and agents take extra flags, whose
own HTTP client sends the management key, and which speaks https when given a CA (made in the
test with ``trustme``).
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e_cluster import Cluster, Process, free_port, wait_until

__all__ = ["SecuredCluster", "free_port", "wait_for_log", "wait_until"]


class SecuredCluster(Cluster):
    def __init__(
        self,
        tmp: Path,
        model_path: Path,
        *,
        management_key: str | None = None,
        ca_file: Path | None = None,
        **balancer_flags: Any,
    ) -> None:
        super().__init__(tmp, model_path, **balancer_flags)
        self.scheme = "https" if ca_file is not None else "http"
        self.ca_file = ca_file
        headers = {"authorization": f"Bearer {management_key}"} if management_key else {}
        self.http.close()
        verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self.http = httpx.Client(timeout=30.0, headers=headers, verify=verify)

    @property
    def inference_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.inference_port}"

    @property
    def management_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.management_port}"

    def start_agent_with(self, name: str, *flags: str, management: str | None = None) -> Process:
        """``paddler agent`` with ``flags``, dialing ``management`` (default: host:port)."""
        args = [
            "agent",
            "--management-addr",
            management or f"127.0.0.1:{self.management_port}",
            "--slots",
            "1",
            "--name",
            name,
            "--threads",
            "1",
            *flags,
        ]
        process = Process(args, self.tmp / f"agent-{name}.log")
        self.agents[name] = process
        return process

    def agent_names(self) -> list[str]:
        return [agent["name"] for agent in self.agents_snapshot()]


def wait_for_log(process: Process, text: str, timeout: float = 30.0, count: int = 1) -> str:
    """Wait until ``text`` appears ``count`` times in the process's log; return the log."""
    wait_until(lambda: process.log().count(text) >= count, timeout, f"{text!r} in the log")
    return process.log()
