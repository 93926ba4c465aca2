"""The public surface of ``paddler.wire``."""

from __future__ import annotations

import paddler.wire as wire


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions and instances.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted() -> None:
    """``__all__`` is sorted (in ruff's isort order), so additions are easy to review."""
    assert wire.__all__ == sorted(wire.__all__, key=_isort_key)


def test_all_lists_every_public_name() -> None:
    """Every public name of the package is in ``__all__`` and every entry exists."""
    public = {
        name
        for name, value in vars(wire).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("paddler")
    }
    assert public <= set(wire.__all__)
    assert all(hasattr(wire, name) for name in wire.__all__)
