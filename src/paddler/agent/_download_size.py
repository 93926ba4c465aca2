"""The agent's cap on model downloads: how it is written and where it is read from."""

from __future__ import annotations

import logging
import os
import re

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_SIZE",
    "MAX_DOWNLOAD_SIZE_ENV",
    "max_download_size_from_env",
    "parse_byte_size",
]

logger = logging.getLogger("paddler.agent")

#: Largest model an agent downloads unless told otherwise (``--max-download-size``); Hugging
#: Face caps a file at 50 GB, so any single GGUF from there fits.
DEFAULT_MAX_DOWNLOAD_SIZE = 64 * 1024**3
#: The environment variable ``paddler agent --max-download-size`` sets (bytes, or 64GiB, 500MB).
MAX_DOWNLOAD_SIZE_ENV = "PADDLER_MAX_DOWNLOAD_SIZE"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)


def parse_byte_size(text: str) -> int:
    """``"64GiB"`` → 68719476736, ``"500MB"`` → 500000000, ``"1024"`` → 1024; ``0`` = no cap.

    :raises ValueError: with a sentence saying what is accepted.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 1073741824, 500MB, 64GiB, 0)")
    number, unit, binary = match.groups()
    power = " kmgtp".index(unit.lower() or " ")
    return int(float(number) * (1024 if binary or not unit else 1000) ** power)


def max_download_size_from_env() -> int | None:
    """The cap from ``PADDLER_MAX_DOWNLOAD_SIZE`` (read at call time), else the default;
    ``None`` when it is 0 (no cap)."""
    raw = os.environ.get(MAX_DOWNLOAD_SIZE_ENV)
    if not raw:
        return DEFAULT_MAX_DOWNLOAD_SIZE
    try:
        size = parse_byte_size(raw)
    except ValueError:
        logger.warning("ignoring %s=%r; using the default cap", MAX_DOWNLOAD_SIZE_ENV, raw)
        return DEFAULT_MAX_DOWNLOAD_SIZE
    return size or None
