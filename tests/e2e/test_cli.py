"""The ``paddler`` command line as a user meets it: help, version, bad flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BALANCER_FLAGS = [
    "--buffered-request-timeout",
    "--compat-openai-addr",
    "--inference-addr",
    "--inference-item-timeout",
    "--inference-cors-allowed-host",
    "--management-addr",
    "--management-cors-allowed-host",
    "--max-buffered-requests",
    "--state-database",
    "--statsd-addr",
    "--statsd-prefix",
    "--statsd-reporting-interval",
    "--web-admin-panel-addr",
    "--log-level",
]


def paddler(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paddler_server.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_no_arguments_prints_help() -> None:
    """``paddler`` alone lists its commands."""
    result = paddler()
    output = result.stdout + result.stderr
    for command in ("balancer", "agent", "demo"):
        assert command in output


def test_version() -> None:
    """``paddler --version`` prints the program name and a version."""
    result = paddler("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("paddler, version ")


def test_balancer_help_explains_every_flag_with_defaults_and_units() -> None:
    """Every Paddler flag is in ``paddler balancer --help``, with defaults and units."""
    result = paddler("balancer", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for flag in BALANCER_FLAGS:
        assert flag in text
    assert "default: 127.0.0.1:8061" in text
    assert "default: 10000" in text and "milliseconds" in text
    assert "default: memory://" in text


def test_agent_help_and_required_flags() -> None:
    """``paddler agent`` explains its flags and refuses to start without the required ones."""
    text = paddler("agent", "--help").stdout
    for flag in ("--management-addr", "--slots", "--name", "--log-level"):
        assert flag in text
    missing = paddler("agent", "--slots", "2")
    assert missing.returncode == 2
    assert "--management-addr" in missing.stderr


def test_plugins_add_commands() -> None:
    """An installed plugin's ``paddler_register_commands`` hook adds a subcommand."""
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="paddler")}
    assert "session_affinity" in names, "bootstrap installs the plugin"
    result = paddler("session-affinity")
    assert result.returncode == 0
    assert "header: x-paddler-session" in result.stdout


def test_relative_state_database_is_rejected_with_the_absolute_form() -> None:
    """A relative file:// path is refused, and the message shows the absolute path to use."""
    result = paddler("balancer", "--state-database", "file://state.json")
    assert result.returncode == 2
    assert f"file://{Path.cwd() / 'state.json'}" in result.stderr


@pytest.mark.parametrize("value", ["8060", "localhost", "http://127.0.0.1:8060", "host:99999"])
def test_malformed_addresses_are_rejected(value: str) -> None:
    """An address must be host:port; the error says so and names the flag."""
    result = paddler("balancer", "--management-addr", value)
    assert result.returncode == 2
    assert "--management-addr" in result.stderr


def test_durations_must_be_whole_milliseconds() -> None:
    """Durations are integer milliseconds, as in Paddler."""
    result = paddler("balancer", "--buffered-request-timeout", "1.5s")
    assert result.returncode == 2
    assert "milliseconds" in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    """A balancer whose port is taken exits with a message naming the address."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            other = free.getsockname()[1]
        result = paddler(
            "balancer",
            "--inference-addr",
            f"127.0.0.1:{port}",
            "--management-addr",
            f"127.0.0.1:{other}",
        )
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr


@pytest.mark.model
def test_demo_prints_a_curl_command_that_works(tmp_path: Path) -> None:
    """``paddler demo`` starts everything, prints the addresses and a request that works."""
    import re
    import shlex
    import signal

    import httpx
    from e2e_cluster import SHUTDOWN_DEADLINE_LOG, free_port

    ports = {name: free_port() for name in ("inference", "management", "panel", "openai")}
    log = (tmp_path / "demo.log").open("w+")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paddler_server.cli",
            "demo",
            "--inference-addr",
            f"127.0.0.1:{ports['inference']}",
            "--management-addr",
            f"127.0.0.1:{ports['management']}",
            "--web-admin-panel-addr",
            f"127.0.0.1:{ports['panel']}",
            "--compat-openai-addr",
            f"127.0.0.1:{ports['openai']}",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert process.stdout is not None, (tmp_path / "demo.log").read_text()
        printed = []
        for line in process.stdout:
            printed.append(line)
            if line.startswith("  paddler agent --management-addr HOST"):
                break  # the last line: how to turn keys on
        text = "".join(printed)
        assert f"http://127.0.0.1:{ports['panel']}" in text
        # Open on loopback with no keys, and it says how to turn them on.
        assert "asks for no keys" in text and "--management-api-key" in text
        agents = httpx.get(f"http://127.0.0.1:{ports['management']}/api/v1/agents", timeout=10)
        assert agents.status_code == 200
        command = text[text.index("curl") :].split("\n\n")[0].replace("\\\n", " ")
        words = shlex.split(command)
        url = next(word for word in words if word.startswith("http://"))
        body = words[words.index("-d") + 1]
        response = httpx.post(
            url, content=body, headers={"content-type": "application/json"}, timeout=60
        )
        assert response.status_code == 200
        assert re.search(r'"Done"', response.text), response.text
        panel = httpx.get(f"http://127.0.0.1:{ports['panel']}/", timeout=10)
        assert panel.status_code == 200
        # The panel's origin is allowed on the inference and management APIs automatically.
        origin = f"http://127.0.0.1:{ports['panel']}"
        for service in ("inference", "management"):
            preflight = httpx.options(
                f"http://127.0.0.1:{ports[service]}/health",
                headers={"origin": origin, "access-control-request-method": "GET"},
            )
            assert preflight.headers.get("access-control-allow-origin") == origin
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0  # the 10 s are a safety net
        log.seek(0)
        assert SHUTDOWN_DEADLINE_LOG not in log.read()  # it finished before its own deadline
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
