"""The limit flags of ``paddler balancer`` (issue 10 point 8) and a bad state file at startup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_cluster import desired_state, free_port

from paddler_server._limits import ServerLimits

pytestmark = pytest.mark.e2e

LIMIT_FLAGS = {
    "--max-connections": ServerLimits().max_connections,
    "--max-body-bytes": ServerLimits().max_body_bytes,
    "--max-frame-bytes": ServerLimits().max_frame_bytes,
    "--max-in-flight-per-socket": ServerLimits().max_in_flight_per_socket,
    "--max-json-depth": ServerLimits().max_json_depth,
    "--max-request-id-length": ServerLimits().max_request_id_length,
}


def paddler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paddler_server.cli", *args],
        capture_output=True,
        text=True,
        timeout=30.0,
        check=False,
    )


def test_every_limit_has_a_flag_with_its_default_in_help_and_docs() -> None:
    """``paddler balancer --help`` and docs/cli.md show each limit flag with its default."""
    text = " ".join(paddler("balancer", "--help").stdout.split())
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for flag, default in LIMIT_FLAGS.items():
        assert flag in text
        assert f"default: {default};" in text.split(flag, 1)[1][:400]
        assert flag in docs and str(default) in docs.split(flag, 1)[1][:300]


def test_a_limit_must_be_positive() -> None:
    result = paddler("balancer", "--max-json-depth", "0")
    assert result.returncode == 2
    assert "--max-json-depth" in result.stderr


@pytest.mark.parametrize(("literal", "field"), [("NaN", "temperature"), ("1e39", "top_p")])
def test_state_file_with_a_non_finite_number_stops_startup_naming_it(
    tmp_path: Path, literal: str, field: str
) -> None:
    """A state file that could never be written back is refused before anything listens."""
    document = {"balancer_desired_state": desired_state(None, **{field: 123456}), "version": "1"}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(document).replace("123456", literal))
    result = paddler(
        "balancer",
        "--inference-addr",
        f"127.0.0.1:{free_port()}",
        "--management-addr",
        f"127.0.0.1:{free_port()}",
        "--state-database",
        f"file://{path}",
    )
    assert result.returncode != 0
    assert f"inference_parameters.{field}" in result.stderr
    assert str(path) in result.stderr
