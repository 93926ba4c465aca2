"""The agent side imports neither the balancer nor llama.cpp (an agent with a custom loader
never needs them; the default loader imports the engine only when it loads a model)."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str) -> list[str]:
    """The balancer, engine, server and llama.cpp modules a fresh interpreter has after it."""
    code = (
        "import sys\n"
        f"{statement}\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] == 'llama_cpp'"
        " or m.startswith(('paddler.balancer', 'paddler.engine', 'paddler_server')))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_importing_the_agent_loads_no_balancer_and_no_engine() -> None:
    assert loaded_after("import paddler.agent") == []


def test_the_check_sees_a_balancer_import() -> None:
    """The same check does see the balancer when something imports it."""
    assert "paddler.balancer" in loaded_after("import paddler.agent, paddler.balancer")


def test_a_custom_loaders_failure_does_not_import_the_engine() -> None:
    """Mapping a load failure to its issue needs the engine's errors only if it was imported."""
    statement = (
        "from paddler.agent._reconciler import load_issue\n"
        "issue = load_issue(RuntimeError('bad'), '/m.gguf')\n"
        "assert type(issue).__name__ == 'ModelCannotBeLoaded', issue"
    )
    assert loaded_after(statement) == []
