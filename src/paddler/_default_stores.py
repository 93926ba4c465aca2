"""The built-in state stores (``memory://``, ``file://``), registered as a default plugin.

Every plugin manager registers this module (agents' too), so it imports the stores only when
a balancer asks for one. ``trylast`` lets an installed plugin take any scheme, these included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paddler.hookspecs import hookimpl

if TYPE_CHECKING:
    from paddler.balancer._state_store import StateStore

__all__ = ["paddler_state_store_for_url"]


@hookimpl(trylast=True)
def paddler_state_store_for_url(url: str) -> StateStore | None:
    from paddler.balancer._state_store import builtin_state_store

    return builtin_state_store(url)
