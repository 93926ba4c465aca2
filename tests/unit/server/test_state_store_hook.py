"""``open_state_store`` is the one place a ``--state-database`` URL becomes a store: it asks
the ``paddler_state_store_for_url`` hook, where the built-in stores answer last."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import paddler
from paddler.balancer import (
    FileStateStore,
    MemoryStateStore,
    StateStoreError,
    open_state_store,
)
from paddler.plugins import get_plugin_manager


class TakesMemory:
    """A plugin that serves ``memory://`` itself, and answers ``odd://`` with a wrong type."""

    def __init__(self) -> None:
        self.store = MemoryStateStore()

    @paddler.hookimpl
    def paddler_state_store_for_url(self, url: str) -> Any:
        if url == "memory://":
            return self.store
        if url.startswith("odd://"):
            return object()
        return None


def test_the_built_in_stores_answer_without_plugins(tmp_path: Path) -> None:
    """``memory://`` and ``file:///abs`` come from the default plugin."""
    pm = get_plugin_manager(entry_points=False)
    assert isinstance(open_state_store("memory://", plugin_manager=pm), MemoryStateStore)
    store = open_state_store(f"file://{tmp_path / 'state.json'}", plugin_manager=pm)
    assert isinstance(store, FileStateStore)


def test_an_installed_plugin_comes_before_the_built_in_store() -> None:
    """A plugin may take any scheme, the built-in ones too (they are ``trylast``)."""
    pm = get_plugin_manager(entry_points=False)
    plugin = TakesMemory()
    pm.register(plugin, name="takes-memory")
    assert open_state_store("memory://", plugin_manager=pm) is plugin.store


def test_a_scheme_nobody_handles_names_the_scheme_and_the_built_in_ones() -> None:
    """One error for every unknown scheme, saying what would work."""
    pm = get_plugin_manager(entry_points=False)
    with pytest.raises(StateStoreError) as caught:
        open_state_store("redis://cache:6379/0", plugin_manager=pm)
    message = str(caught.value)
    assert "redis://" in message
    assert "memory://" in message and "file:///absolute/path" in message
    assert "paddler_state_store_for_url" in message
    assert isinstance(caught.value, paddler.PaddlerError)


def test_a_relative_file_path_shows_the_absolute_form() -> None:
    """The built-in file store still refuses a relative path, with the form to use."""
    pm = get_plugin_manager(entry_points=False)
    with pytest.raises(StateStoreError, match=re.escape(f"file://{Path.cwd() / 'state.json'}")):
        open_state_store("file://state.json", plugin_manager=pm)


def test_a_plugin_that_returns_something_else_is_named() -> None:
    """A hook that answers with a non-store is refused, naming what it returned."""
    pm = get_plugin_manager(entry_points=False)
    pm.register(TakesMemory(), name="takes-memory")
    expected = re.escape("returned object, not a paddler.balancer.StateStore")
    with pytest.raises(StateStoreError, match=expected):
        open_state_store("odd://x", plugin_manager=pm)
