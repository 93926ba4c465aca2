"""The file state database survives a balancer restart (spec §5.2).

One balancer process with ``--state-database file:///...`` is stopped (SIGTERM) and started
again on the same file and ports; what a user PUT before must come back unchanged from GET.
No agent is needed: this is the balancer's own memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_cluster import Cluster, desired_state, free_port

pytestmark = [pytest.mark.e2e]

TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("persistence")
    cluster = Cluster(tmp, model_path, state_database=f"file://{tmp / 'state.json'}")
    try:
        cluster.start_balancer()
        yield cluster
    finally:
        cluster.stop()


def restart(cluster: Cluster) -> None:
    assert cluster.balancer is not None
    cluster.balancer.stop()
    cluster.start_balancer()


def desired(cluster: Cluster) -> Any:
    response = cluster.http.get(f"{cluster.management_url}/api/v1/balancer_desired_state")
    assert response.status_code == 200, response.text
    return response.json()


def applicable(cluster: Cluster) -> Any:
    response = cluster.http.get(f"{cluster.management_url}/api/v1/balancer_applicable_state")
    assert response.status_code == 200, response.text
    return response.json()


def put(cluster: Cluster, state: dict[str, Any]) -> None:
    response = cluster.put_state(state)
    assert response.status_code == 204, response.text


def test_url_model_with_chat_template_override_survives_restart(cluster: Cluster) -> None:
    """A URL model, a chat template override and custom parameters come back after a restart."""
    state = desired_state(None, context_size=1024, temperature=0.5, k_cache_dtype="Q8_0")
    state["model"] = {"Url": {"url": "https://models.example.com/smollm2/model.gguf"}}
    state["chat_template_override"] = {"content": TEMPLATE}
    state["use_chat_template_override"] = True
    put(cluster, state)
    assert desired(cluster) == state

    restart(cluster)

    assert desired(cluster) == state
    pushed = applicable(cluster)
    assert pushed["model"] == state["model"]
    assert pushed["chat_template_override"] == {"content": TEMPLATE}
    assert pushed["inference_parameters"] == state["inference_parameters"]


def test_file_holds_paddlers_format(cluster: Cluster) -> None:
    """The file on disk is Paddler's: ``{"balancer_desired_state": ..., "version": "1"}``."""
    state = desired_state(cluster.model_path)
    put(cluster, state)
    path = Path(cluster.balancer_flags["state_database"].removeprefix("file://"))
    document = json.loads(path.read_text())
    assert document == {"balancer_desired_state": state, "version": "1"}


def test_model_switch_and_unused_override_survive_restart(cluster: Cluster) -> None:
    """The last of several PUTs wins across a restart; an override kept but switched off stays
    stored and is not pushed to agents."""
    first = desired_state(None)
    first["model"] = {"Url": {"url": "http://127.0.0.1:9/first.gguf"}}
    put(cluster, first)
    second = desired_state(cluster.model_path, context_size=512)
    second["chat_template_override"] = {"content": TEMPLATE}
    second["use_chat_template_override"] = False
    put(cluster, second)

    restart(cluster)

    assert desired(cluster) == second
    pushed = applicable(cluster)
    assert pushed["model"] == {"LocalToAgent": str(cluster.model_path)}
    assert pushed["chat_template_override"] is None


def test_second_restart_keeps_state_unchanged(cluster: Cluster) -> None:
    """Starting on a file it wrote itself never rewrites what it holds."""
    state = desired_state(None)
    state["model"] = {
        "HuggingFace": {"repo_id": "owner/repo", "revision": "main", "filename": "m.gguf"}
    }
    put(cluster, state)
    restart(cluster)
    restart(cluster)
    assert desired(cluster) == state


def run_balancer_briefly(database: str) -> subprocess.CompletedProcess[str]:
    """Start ``paddler balancer`` on free ports; it must exit by itself (bad database)."""
    return subprocess.run(
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
            database,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "JSON"),
        ('{"balancer_desired_state": {}, "version": "1"}', "model"),
        ('{"balancer_desired_state": null, "version": "1", "extra": 1}', "extra"),
    ],
)
def test_unreadable_database_stops_startup_naming_file_and_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    """A state file that cannot be parsed stops the balancer at startup, with a message that
    names the file and the problem; the file is left as it was."""
    path = tmp_path / "state.json"
    path.write_text(content)
    result = run_balancer_briefly(f"file://{path}")
    assert result.returncode != 0
    message = result.stderr + result.stdout
    assert str(path) in message, message
    assert problem.lower() in message.lower(), message
    assert "Traceback" not in message, message
    assert path.read_text() == content


def test_missing_database_file_is_created_with_the_default_state(cluster: Cluster) -> None:
    """A new file path starts from the default state (model "None") and is written out."""
    path = cluster.tmp / "fresh" / "state.json"
    path.parent.mkdir()
    fresh = Cluster(cluster.tmp / "fresh", cluster.model_path, state_database=f"file://{path}")
    try:
        fresh.start_balancer()
        state = desired(fresh)
        assert state["model"] == "None"
        assert json.loads(path.read_text())["balancer_desired_state"] == state
    finally:
        fresh.stop()
