"""``paddler agent --max-download-size``: parsed, and handed to the downloads of that process."""

from __future__ import annotations

import os
from typing import Any

import pytest
from click.testing import CliRunner

import paddler_server._run
from paddler.agent._download_size import (
    DEFAULT_MAX_DOWNLOAD_SIZE,
    MAX_DOWNLOAD_SIZE_ENV,
    max_download_size_from_env,
)
from paddler_server.cli import cli


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the agent's run loop: record the options instead of dialing a balancer."""
    calls: list[Any] = []
    monkeypatch.setattr(paddler_server._run, "run_until_signal", lambda *a: calls.append(a))
    monkeypatch.delenv(MAX_DOWNLOAD_SIZE_ENV, raising=False)
    yield calls
    os.environ.pop(MAX_DOWNLOAD_SIZE_ENV, None)


def agent(*flags: str) -> Any:
    args = ["agent", "--management-addr", "127.0.0.1:1", "--slots", "1", *flags]
    return CliRunner().invoke(cli, args)


def test_default_is_64_gib(ran: list[Any]) -> None:
    result = agent()
    assert result.exit_code == 0, result.output
    assert max_download_size_from_env() == DEFAULT_MAX_DOWNLOAD_SIZE == 64 * 1024**3


def test_flag_sets_the_cap_of_the_process(ran: list[Any]) -> None:
    assert agent("--max-download-size", "500MB").exit_code == 0
    assert max_download_size_from_env() == 500_000_000
    assert agent("--max-download-size", "0").exit_code == 0
    assert max_download_size_from_env() is None  # no cap


def test_a_bad_size_is_a_usage_error(ran: list[Any]) -> None:
    result = agent("--max-download-size", "lots")
    assert result.exit_code == 2
    assert "'lots' is not a size" in result.output
    assert ran == []
