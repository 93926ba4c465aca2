"""docs/plugin-hooks.md documents every hook with its exact signature (datasette style)."""

from __future__ import annotations

import inspect
from pathlib import Path

from paddler import hookspecs
from paddler.plugins import get_plugin_manager

DOC = Path(__file__).parents[3] / "docs" / "plugin-hooks.md"


def test_every_hook_has_a_section_headed_by_its_signature() -> None:
    text = DOC.read_text()
    pm = get_plugin_manager(entry_points=False)
    names = [name for name in dir(pm.hook) if name.startswith("paddler_")]
    assert names, "no hooks found"
    for name in names:
        parameters = inspect.signature(getattr(hookspecs, name)).parameters
        heading = f"## {name}({', '.join(parameters)})"
        assert heading in text, f"docs/plugin-hooks.md lacks the heading {heading!r}"
        for parameter in parameters:
            assert f"`{parameter}`" in text, f"{name}: argument {parameter} is not described"
