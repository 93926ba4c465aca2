"""``--state-database`` reaches a state store that an installed plugin adds.

The plugin is installed the way a real one is found: a distribution on ``sys.path`` (here a
temporary directory on ``PYTHONPATH``) whose ``entry_points.txt`` names a module in the
``paddler`` group. Nothing in the balancer is patched: ``paddler balancer`` loads the entry
point and asks its ``paddler_state_store_for_url`` hook for the URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_cluster import Cluster, desired_state, free_port

pytestmark = pytest.mark.e2e

PLUGIN = '''
"""A state store that appends every desired state to a JSON-lines journal."""

from urllib.parse import urlsplit

import anyio

import paddler
from paddler.balancer import StateStore
from paddler.wire import BalancerDesiredState, converter


class JournalStore(StateStore):
    def __init__(self, path: str) -> None:
        self.path = anyio.Path(path)

    async def load(self) -> BalancerDesiredState:
        lines = (await self.path.read_text()).splitlines() if await self.path.exists() else []
        if not lines:
            return BalancerDesiredState.default()
        return converter.loads(lines[-1], BalancerDesiredState)

    async def store(self, state: BalancerDesiredState) -> None:
        async with await self.path.open("a") as journal:
            await journal.write(converter.dumps(state) + "\\n")


@paddler.hookimpl
def paddler_state_store_for_url(url: str) -> StateStore | None:
    parts = urlsplit(url)
    return JournalStore(parts.path) if parts.scheme == "journal" else None
'''


def install_plugin(site: Path) -> dict[str, str]:
    """Write the plugin and its distribution metadata; the environment that finds it."""
    site.mkdir()
    (site / "journal_store.py").write_text(PLUGIN)
    dist = site / "journal_store-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: journal-store\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[paddler]\njournal = journal_store\n")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


def test_a_plugin_store_keeps_the_desired_state(tmp_path: Path) -> None:
    """The balancer starts from the state the plugin's store holds, and stores through it."""
    journal = tmp_path / "states.jsonl"
    first = desired_state(None, context_size=1024)
    journal.write_text(json.dumps(first) + "\n")
    cluster = Cluster(tmp_path, Path("unused.gguf"), state_database=f"journal://{journal}")
    cluster.balancer_env = install_plugin(tmp_path / "site")
    try:
        cluster.start_balancer()
        url = f"{cluster.management_url}/api/v1/balancer_desired_state"
        assert cluster.http.get(url).json() == first

        second = desired_state(None, context_size=4096)
        assert cluster.put_state(second).status_code == 204
        assert cluster.http.get(url).json() == second
    finally:
        cluster.stop()
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert lines == [first, second]


def test_a_scheme_no_store_handles_is_a_usage_error(tmp_path: Path) -> None:
    """Without a plugin for the scheme, the balancer refuses to start and says what exists."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "paddler_server.cli",
            "balancer",
            "--inference-addr",
            f"127.0.0.1:{free_port()}",
            "--management-addr",
            f"127.0.0.1:{free_port()}",
            "--state-database",
            f"journal://{tmp_path / 'states.jsonl'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "--state-database" in result.stderr
    assert "journal://" in result.stderr
    assert "memory://" in result.stderr and "file:///absolute/path" in result.stderr
