"""Where a balancer's API keys come from, and reloading them without a restart.

The keys are the ``--api-key`` values (and ``PADDLER_API_KEYS``) plus the ``--api-keys-file``
entries. The file is read again on SIGHUP and whenever it changes (its modification time,
size or inode, checked every second, so an editor's write-and-rename counts too). A reload
that fails keeps the keys in use and logs why; a good one takes effect for the next request.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
import click
from anyio.abc import TaskStatus

from paddler_server._api_keys import (
    ApiKey,
    ApiKeyStore,
    KeysFileError,
    keys_from_flags,
    load_keys_file,
)

__all__ = ["KeysSource", "api_key_options", "env_api_keys", "keys_source", "watch_keys"]

logger = logging.getLogger("paddler_server.api_keys")

#: Seconds between two looks at the keys file.
POLL_INTERVAL = 1.0


def env_api_keys(value: str | None) -> tuple[str, ...]:
    """``PADDLER_API_KEYS``: comma-separated keys (spaces around each are dropped)."""
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


@attrs.frozen
class KeysSource:
    """``--api-key`` values and the optional keys file; ``load`` reads them all."""

    flag_keys: tuple[str, ...] = ()
    file: Path | None = None

    @property
    def configured(self) -> bool:
        """Whether keys were asked for at all (an empty keys file still closes the service:
        keys may be added by a reload)."""
        return bool(self.flag_keys) or self.file is not None

    def load(self) -> list[ApiKey]:
        """Every key; ``KeysFileError`` (a ``ValueError``) says what is wrong and where."""
        keys = keys_from_flags(self.flag_keys)
        if self.file is not None:
            from_file = load_keys_file(self.file)
            names = {key.name for key in from_file}
            digests = {key.digest for key in from_file}
            for key in keys:
                if key.name in names:
                    raise KeysFileError(f"{self.file}: the name {key.name!r} is a --api-key's")
            keys = [key for key in keys if key.digest not in digests] + from_file
        return keys


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def reload_keys(source: KeysSource, store: ApiKeyStore, why: str) -> bool:
    """Load ``source`` into ``store``; on failure keep the old keys and log the error."""
    try:
        keys = source.load()
        store.replace(keys)
    except (KeysFileError, ValueError) as exc:
        logger.error("API keys not reloaded (%s), keeping the previous keys: %s", why, exc)
        return False
    logger.info("API keys reloaded reason=%s keys=%d names=%s", why, len(keys), store.names)
    return True


async def watch_keys(
    source: KeysSource,
    store: ApiKeyStore,
    *,
    interval: float = POLL_INTERVAL,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Reload on SIGHUP and on changes of the keys file, until cancelled."""
    file = source.file
    with anyio.open_signal_receiver(signal.SIGHUP) as signals:
        task_status.started()
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                async for _ in signals:
                    reload_keys(source, store, "SIGHUP")

            tg.start_soon(on_signals)
            if file is None:
                return  # SIGHUP still reloads the --api-key values (nothing changes)
            seen = _signature(file)
            while True:
                await anyio.sleep(interval)
                now = _signature(file)
                if now != seen:
                    seen = now
                    reload_keys(source, store, "file changed")


def api_key_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--api-key`` (repeatable; else ``PADDLER_API_KEYS``) and ``--api-keys-file``."""
    command = click.option(
        "--api-keys-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="PATH",
        help="TOML file of [[keys]] (name, key or key_sha256, and optional "
        "requests_per_minute, tokens_per_minute, max_concurrent_requests, priority, models) "
        "for the inference and OpenAI APIs; reloaded on SIGHUP and when it changes.",
    )(command)
    return click.option(
        "--api-key",
        "api_key",
        multiple=True,
        metavar="KEY",
        help="A key the inference and OpenAI APIs accept as Authorization: Bearer KEY. "
        "Repeatable; also PADDLER_API_KEYS (comma-separated). No key: the APIs are open.",
    )(command)


def keys_source(api_key: Sequence[str], api_keys_file: Path | None) -> KeysSource:
    """The CLI's keys, checked now: a bad value or file is a usage error naming it."""
    flags = tuple(api_key) or env_api_keys(os.environ.get("PADDLER_API_KEYS"))
    source = KeysSource(flag_keys=flags, file=api_keys_file)
    try:
        source.load()
    except KeysFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-keys-file") from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-key / PADDLER_API_KEYS") from exc
    return source
