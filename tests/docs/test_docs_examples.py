"""Every code block of README.md and docs/ runs as pasted, against a real cluster.

One test per page: its blocks run in order (see ``docs_blocks`` for how each language runs and
the two directives). The cluster is real CLI processes with the demo model; a page that
changes the desired state (embeddings mode, another template) gets it put back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "openai"))

from docs_blocks import (
    PROSE_LANGUAGES,
    Block,
    blocks,
    check_copy,
    check_language,
    pages,
    parse_json,
    parse_toml,
    pointed_at,
)
from e2e_cluster import free_port
from openai_cluster import OpenAICluster, start_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.model]

SHELL_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[OpenAICluster]:
    running = start_cluster(
        tmp_path_factory.mktemp("docs"),
        model_path,
        slots=2,
        parameters={"context_size": 2048},
        web_admin_panel_addr=f"127.0.0.1:{free_port()}",
    )
    try:
        yield running
    finally:
        running.stop()


def ports(cluster: OpenAICluster) -> dict[str, int]:
    panel = str(cluster.balancer_flags["web_admin_panel_addr"]).rsplit(":", 1)[1]
    return {
        "management": cluster.management_port,
        "inference": cluster.inference_port,
        "panel": int(panel),
        "openai": cluster.openai_port,
    }


@contextlib.contextmanager
def state_kept(cluster: OpenAICluster) -> Iterator[None]:
    """Put the desired state back (and wait for the agent) if the page changed it."""
    url = f"{cluster.management_url}/api/v1/balancer_desired_state"
    before = httpx.get(url).json()
    try:
        yield
    finally:
        if httpx.get(url).json() != before:
            assert httpx.put(url, json=before).status_code == 204
            cluster.wait_ready(1)


def run_python(block: Block, code: str, namespace: dict[str, Any]) -> None:
    argv = sys.argv
    sys.argv = [block.where]
    try:
        exec(compile(code, block.where, "exec"), namespace)
    finally:
        sys.argv = argv


def run_shell(block: Block, code: str, workdir: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.where}: exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n"
        f"{done.stderr}"
    )


def run_page(page: Path, cluster: OpenAICluster, workdir: Path) -> int:
    """Run every block of ``page``; the number that ran."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    ran = 0
    for block in blocks(page):
        check_language(block)
        check_copy(block)
        if block.not_run is not None or block.language in PROSE_LANGUAGES:
            continue
        code = pointed_at(block.code, ports(cluster), cluster.model_path)
        if block.file is not None:
            (workdir / block.file).parent.mkdir(parents=True, exist_ok=True)
            (workdir / block.file).write_text(code)
        if block.language == "json":
            parse_json(block, code)
        elif block.language == "toml":
            parse_toml(block, code)
        elif block.file is not None:
            pass  # written for a later block to use
        elif block.language == "python":
            run_python(block, code, namespace)
        elif block.language == "sh":
            run_shell(block, code, workdir)
        ran += 1
    return ran


# A page runs in 20-110 s on an idle 2-core machine (library.md loads the model in-process
# twice); the default 300 s is too tight when the machine is shared.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_page_runs_as_pasted(
    page: Path,
    cluster: OpenAICluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with state_kept(cluster):
        run_page(page, cluster, tmp_path)


def test_every_page_is_collected_and_not_run_is_rare() -> None:
    """The collector sees every block; blocks that cannot run are the exception."""
    every = [b for page in pages() for b in blocks(page)]
    not_run = [b.where for b in every if b.not_run is not None]
    assert len(every) > 30
    assert len(not_run) <= len(every) // 4, not_run
