"""``paddler balancer --balancing-policy``: a misspelt name stops the balancer at startup."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_an_unknown_policy_is_refused_naming_the_known_ones() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "paddler_server.cli", "balancer", "--balancing-policy", "cache"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--balancing-policy" in result.stderr
    assert "unknown balancing policy 'cache'" in result.stderr
    assert "cache_aware" in result.stderr and "least_busy" in result.stderr


def test_the_flag_is_in_the_help_with_its_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "paddler_server.cli", "balancer", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = " ".join(result.stdout.split())
    assert "--balancing-policy NAME" in text and "default: least_busy" in text
