"""The balancer side of the tree imports without llama.cpp (only the agent's engine needs it)."""

from __future__ import annotations

import subprocess
import sys

#: What a ``paddler balancer`` process imports: the core, and every app it serves.
BALANCER_SIDE = (
    "paddler",
    "paddler.wire",
    "paddler.balancer",
    "paddler_server.inference",
    "paddler_server.management",
    "paddler_server.openai",
)


def test_balancer_side_modules_leave_llama_cpp_unloaded() -> None:
    """A fresh interpreter (this one may have loaded the engine already) imports them all and
    then has neither ``llama_cpp`` nor ``paddler.engine`` in ``sys.modules``."""
    code = (
        "import importlib, sys\n"
        f"for name in {BALANCER_SIDE!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[0] == 'llama_cpp' or m.startswith('paddler.engine')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
