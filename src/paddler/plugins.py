"""The plugin manager: hook specs, installed plugins (entry-point group ``paddler``), defaults.

Each ``Balancer`` and ``Agent`` builds its own manager, so tests can register throw-away
plugins without touching global state.

Environment:

* ``PADDLER_LOAD_PLUGINS`` -- comma-separated allow-list of entry-point names to load
  (empty string loads none); unset loads every installed plugin.
* ``PADDLER_TRACE_PLUGINS`` -- when set to a non-empty value, every hook call and result is
  logged at DEBUG on ``paddler.plugins``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from typing import Any

import pluggy

from paddler import hookspecs

__all__ = ["DEFAULT_PLUGINS", "get_plugin_manager"]

logger = logging.getLogger("paddler.plugins")

DEFAULT_PLUGINS = (
    "paddler.policies",
    "paddler.cache_aware",
    "paddler.transports._plugin",
    "paddler._default_stores",
)


def _allowed_names() -> set[str] | None:
    raw = os.environ.get("PADDLER_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allowed = _allowed_names()
    for entry_point in importlib.metadata.entry_points(group="paddler"):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        plugin = entry_point.load()
        pm.register(plugin, name=entry_point.name)
        logger.debug("loaded plugin %s from %s", entry_point.name, entry_point.value)


def get_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the hook specs, installed plugins (if asked) and the defaults."""
    pm = pluggy.PluginManager("paddler")
    pm.add_hookspecs(hookspecs)
    if entry_points:
        _load_entry_points(pm)
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
    if os.environ.get("PADDLER_TRACE_PLUGINS"):

        def before(hook_name: str, impls: Any, kwargs: Any) -> None:
            logger.debug("hook %s(%s) -> %d impls", hook_name, kwargs, len(impls))

        def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
            logger.debug("hook %s returned %r", hook_name, outcome.get_result())

        pm.add_hookcall_monitoring(before, after)
    return pm
