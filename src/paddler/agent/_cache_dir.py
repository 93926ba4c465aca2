"""Where downloaded models live on an agent (spec §5.3).

One directory per host, shared by every agent process on it; each URL maps to a file named by
the SHA-256 of the URL, so two agents asking for the same URL meet at the same paths.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from attrs import frozen

__all__ = ["UrlCachePaths", "default_cache_dir", "url_cache_paths"]

#: Sub-directory of the cache directory that holds URL downloads.
DOWNLOADED_MODELS = "downloaded-models"


def default_cache_dir() -> Path:
    """``$PADDLER_CACHE_DIR``, else ``$XDG_CACHE_HOME/paddler``, else ``~/.cache/paddler``.

    On Windows the last fallback is ``%LOCALAPPDATA%\\paddler``. Read at call time, so a
    process (or a test) may change the environment after import.
    """
    explicit = os.environ.get("PADDLER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "paddler"
    local_app_data = os.environ.get("LOCALAPPDATA")
    if sys.platform == "win32" and local_app_data:
        return Path(local_app_data) / "paddler"
    return Path.home() / ".cache" / "paddler"


@frozen
class UrlCachePaths:
    """The three files one URL download uses."""

    directory: Path
    final: Path  #: the finished model, ``<hash>``
    partial: Path  #: bytes received so far, ``<hash>.partial``; resumed with ``Range``
    lock: Path  #: held by the one process downloading, ``<hash>.lock``


def url_cache_paths(url: str, cache_dir: Path | None = None) -> UrlCachePaths:
    """The cache files for ``url`` under ``cache_dir`` (default: :func:`default_cache_dir`)."""
    directory = (cache_dir if cache_dir is not None else default_cache_dir()) / DOWNLOADED_MODELS
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
    return UrlCachePaths(
        directory=directory,
        final=directory / digest,
        partial=directory / f"{digest}.partial",
        lock=directory / f"{digest}.lock",
    )
