"""Where the balancer keeps its desired state (spec §5.2): ``memory://`` or ``file:///abs/path``.

A store keeps one desired state per model pool (``load(pool)``, ``store(state, pool)``,
``stored_pools()``), so a plugin can add one (for example a database) through the
``paddler_state_store_for_url`` hook. :func:`open_state_store` is the one place a URL becomes a
store: it asks that hook, where the two built-in schemes answer last (:func:`builtin_state_store`,
registered by ``paddler._default_stores``).
A store written before pools (``load()`` and ``store(state)`` only) keeps the ``default``
pool's state; the balancer keeps the other pools' states in memory then (``keeps_pools``).
The file store writes atomically: a temporary file in the same directory, fsync, rename, fsync
of the directory. A crash at any point leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import anyio

from paddler.balancer._desired_state import validate_desired_state
from paddler.errors import InvalidRequest, PaddlerError
from paddler.wire import (
    DEFAULT_POOL,
    BalancerDesiredState,
    WireError,
    converter,
    parse_json,
    validate_pool_name,
)

__all__ = [
    "FileStateStore",
    "MemoryStateStore",
    "StateStore",
    "StateStoreError",
    "builtin_state_store",
    "keeps_pools",
    "open_state_store",
]

if TYPE_CHECKING:
    import pluggy

logger = logging.getLogger("paddler.balancer")

#: The version we write (``"version"`` key). Like Paddler, reading accepts any version string:
#: Paddler keeps it as an opaque string and reads the document the same whatever it says.
FILE_FORMAT_VERSION = "1"


class StateStoreError(PaddlerError):
    """The state store cannot be opened, read or written; the message says which and why."""


class StateStore:
    """Keeps one :class:`~paddler.wire.BalancerDesiredState` per model pool. Subclass it to
    add a store."""

    async def load(self, pool: str = DEFAULT_POOL) -> BalancerDesiredState:
        """``pool``'s stored state (the default state when nothing was stored for it yet)."""
        raise NotImplementedError

    async def store(self, state: BalancerDesiredState, pool: str = DEFAULT_POOL) -> None:
        """Replace ``pool``'s stored state; when this returns, it survives a restart."""
        raise NotImplementedError

    async def stored_pools(self) -> tuple[str, ...]:
        """The pools that have a stored state, ``default`` first (always), then by name."""
        return (DEFAULT_POOL,)

    async def aclose(self) -> None:
        """Release what the store holds (nothing for the built-in stores)."""


def keeps_pools(store: StateStore) -> bool:
    """Whether ``store`` keeps a state per pool (False: a store written before pools, whose
    ``load`` takes no ``pool``; it keeps only the ``default`` pool's)."""
    try:
        return "pool" in inspect.signature(store.load).parameters
    except (TypeError, ValueError):
        return False


def _pool_order(pools: Iterable[str]) -> tuple[str, ...]:
    return (DEFAULT_POOL, *sorted(set(pools) - {DEFAULT_POOL}))


class MemoryStateStore(StateStore):
    """``memory://``: starts from the default state and is lost on restart."""

    def __init__(self, state: BalancerDesiredState | None = None) -> None:
        self._states: dict[str, BalancerDesiredState] = {}
        if state is not None:
            self._states[DEFAULT_POOL] = state

    def __repr__(self) -> str:
        return "<MemoryStateStore>"

    async def load(self, pool: str = DEFAULT_POOL) -> BalancerDesiredState:
        return self._states.get(pool) or BalancerDesiredState.default()

    async def store(self, state: BalancerDesiredState, pool: str = DEFAULT_POOL) -> None:
        self._states[validate_pool_name(pool)] = state

    async def stored_pools(self) -> tuple[str, ...]:
        return _pool_order(self._states)


class FileStateStore(StateStore):
    """``file:///abs/path``: pretty JSON, rewritten whole and atomically on every store.

    The document is ``{"balancer_desired_state": {...}, "version": "1"}``, the ``default``
    pool's state as before pools, plus ``"pools": {"<name>": {...}}`` once another pool has a
    state. A missing or empty file is created with the default state on first :meth:`load`.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_absolute():
            raise StateStoreError(f"state file path must be absolute: use file://{path.absolute()}")
        self.path = path
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"<FileStateStore {self.path}>"

    async def load(self, pool: str = DEFAULT_POOL) -> BalancerDesiredState:
        async with self._lock:
            states = await self._load_all()
        return states.get(pool) or BalancerDesiredState.default()

    async def store(self, state: BalancerDesiredState, pool: str = DEFAULT_POOL) -> None:
        validate_pool_name(pool)
        async with self._lock:
            states = await self._load_all()
            states[pool] = state
            await anyio.to_thread.run_sync(self._write, states)

    async def stored_pools(self) -> tuple[str, ...]:
        async with self._lock:
            return _pool_order(await self._load_all())

    async def _load_all(self) -> dict[str, BalancerDesiredState]:
        """Every pool's state; a missing or empty file is created (the caller holds the lock)."""
        text = await anyio.to_thread.run_sync(self._read)
        if text is None or not text.strip():
            states = {DEFAULT_POOL: BalancerDesiredState.default()}
            logger.info("state file %s is missing or empty; creating it", self.path)
            await anyio.to_thread.run_sync(self._write, states)
            return states
        return self._parse(text)

    def check(self) -> None:
        """Fail now, at startup, if the file cannot be used (it is read, not created).

        :raises StateStoreError: naming the file and the problem.
        """
        if not self.path.parent.is_dir():
            raise StateStoreError(
                f"cannot use state file {self.path}: directory {self.path.parent} does not exist"
            )
        text = self._read()
        if text is not None and text.strip():
            self._parse(text)

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateStoreError(f"cannot read state file {self.path}: {exc}") from exc

    def _parse(self, text: str) -> dict[str, BalancerDesiredState]:
        try:
            document: Any = parse_json(text)
        except WireError as exc:  # bad JSON, NaN or infinity, or nested too deeply
            raise self._invalid(f"not JSON that can be read ({exc})") from exc
        if not isinstance(document, dict):
            raise self._invalid("expected a JSON object")
        extra = sorted(set(document) - {"balancer_desired_state", "pools", "version"})
        if extra:
            raise self._invalid(f"unknown keys {', '.join(extra)}")
        version = document.get("version", FILE_FORMAT_VERSION)
        if not isinstance(version, str):
            raise self._invalid(f"version must be a string, got {json.dumps(version)}")
        if "balancer_desired_state" not in document:
            raise self._invalid("the key balancer_desired_state is missing")
        states = {DEFAULT_POOL: self._parse_state(document["balancer_desired_state"], None)}
        pools = document.get("pools", {})
        if not isinstance(pools, dict):
            raise self._invalid("pools must be an object of pool name to desired state")
        for name, state in pools.items():
            try:
                validate_pool_name(name)
            except InvalidRequest as exc:
                raise self._invalid(f"pools: {exc}") from exc
            if name != DEFAULT_POOL:
                states[name] = self._parse_state(state, name)
        return states

    def _parse_state(self, value: Any, pool: str | None) -> BalancerDesiredState:
        where = "balancer_desired_state" if pool is None else f"pools.{pool}"
        try:
            state = converter.loads(json.dumps(value), BalancerDesiredState)
            validate_desired_state(state)
        except (WireError, InvalidRequest) as exc:
            raise self._invalid(f"{where}: {exc}") from exc
        return state

    def _invalid(self, problem: str) -> StateStoreError:
        return StateStoreError(
            f"state file {self.path} is an incompatible or invalid database: {problem}; "
            "fix or remove it (a missing file is created with the default state)"
        )

    def _write(self, states: dict[str, BalancerDesiredState]) -> None:
        default = states.get(DEFAULT_POOL) or BalancerDesiredState.default()
        document: dict[str, Any] = {"balancer_desired_state": converter.unstructure(default)}
        others = {name: states[name] for name in _pool_order(states)[1:]}
        if others:
            document["pools"] = {
                name: converter.unstructure(state) for name, state in others.items()
            }
        document["version"] = FILE_FORMAT_VERSION
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
        data = (text + "\n").encode("utf-8")
        directory = self.path.parent
        try:
            fd, temporary = tempfile.mkstemp(
                dir=directory, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as exc:
            raise StateStoreError(f"cannot write state file {self.path}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            _replace(temporary, self.path)
            _fsync_directory(directory)
        except OSError as exc:
            raise StateStoreError(f"cannot write state file {self.path}: {exc}") from exc
        finally:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass


def _replace(source: str, target: Path) -> None:
    """``os.replace``; its own function so tests can simulate a crash before it."""
    os.replace(source, target)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: What the operator may write, named in the error for a URL no store handles.
BUILTIN_SCHEMES = "memory:// or file:///absolute/path"


def builtin_state_store(url: str) -> StateStore | None:
    """The built-in store for ``url`` (``memory://``, ``file:///absolute/path``), else ``None``.

    :raises StateStoreError: for a malformed ``memory:`` or ``file:`` URL, such as a relative
        path (the message shows the absolute form to use instead).
    """
    parts = urlsplit(url)
    if parts.scheme == "memory":
        if parts.netloc or parts.path.strip("/") or parts.query:
            raise StateStoreError(f"state database {url!r}: use memory:// (nothing after it)")
        return MemoryStateStore()
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            relative = unquote(parts.netloc + parts.path)
            raise StateStoreError(
                f"state database {url!r} has a relative path; "
                f"use file://{Path(relative).absolute()} (file:// then an absolute path)"
            )
        store = FileStateStore(Path(unquote(parts.path)))
        store.check()
        return store
    return None


def open_state_store(url: str, *, plugin_manager: pluggy.PluginManager | None = None) -> StateStore:
    """The store for ``url``, from the first ``paddler_state_store_for_url`` hook that answers.

    Installed plugins are asked first; ``memory://`` and ``file:///absolute/path`` answer last.

    :param plugin_manager: the manager whose plugins are asked (a fresh
        ``paddler.plugins.get_plugin_manager()`` when not given).
    :raises StateStoreError: for a URL no store handles (the message names the scheme and what
        is built in), or a malformed one.
    """
    if plugin_manager is None:
        from paddler.plugins import get_plugin_manager

        plugin_manager = get_plugin_manager()
    store = plugin_manager.hook.paddler_state_store_for_url(url=url)
    if store is None:
        scheme = urlsplit(url).scheme
        what = f"the scheme {scheme}://" if scheme else "a URL without a scheme"
        raise StateStoreError(
            f"state database {url!r}: no state store handles {what}; use {BUILTIN_SCHEMES}, "
            "or install a plugin that implements paddler_state_store_for_url"
        )
    if not isinstance(store, StateStore):
        raise StateStoreError(
            f"state database {url!r}: the plugin returned {type(store).__name__}, "
            "not a paddler.balancer.StateStore"
        )
    return store
