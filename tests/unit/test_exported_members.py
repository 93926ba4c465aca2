"""The public surface: a flat, sorted ``__all__`` per package, no name meaning two things,
every top-level name documented, and one error tree."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import paddler

#: Every public namespace (what a user may import); the rest is ``_private``.
PUBLIC_PACKAGES = (
    "paddler",
    "paddler.agent",
    "paddler.balancer",
    "paddler.client",
    "paddler.client.errors",
    "paddler.engine",
    "paddler.errors",
    "paddler.hookspecs",
    "paddler.metrics",
    "paddler.plugins",
    "paddler.policies",
    "paddler.transports",
    "paddler.wire",
)
LIBRARY_DOC = Path(__file__).resolve().parents[2] / "docs" / "library.md"


def isort_order(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def exported() -> list[tuple[str, str, object]]:
    """``(package, name, object)`` for every name of every public ``__all__``."""
    rows = []
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        rows += [(package, name, getattr(module, name)) for name in module.__all__]
    return rows


def test_all_is_sorted_and_public() -> None:
    """``__all__`` is sorted and holds only public names."""
    assert paddler.__all__ == sorted(paddler.__all__)
    assert all(not name.startswith("_") for name in paddler.__all__)


def test_every_exported_name_resolves() -> None:
    """Each name in ``__all__`` imports, and the public names of ``dir()`` are exactly it."""
    for name in paddler.__all__:
        assert getattr(paddler, name) is not None, name
    public = {
        name
        for name in dir(paddler)
        if not name.startswith("_")
        and name not in {"annotations", "importlib", "TYPE_CHECKING", "Any"}
        and not isinstance(getattr(paddler, name), type(paddler))
    }
    assert public == set(paddler.__all__)


def test_errors_share_one_base_and_carry_codes() -> None:
    """Every library error is a PaddlerError with the integer code the server maps."""
    codes = {
        "BufferFull": 503,
        "BufferTimeout": 504,
        "InferenceItemTimeout": 504,
        "AgentGone": 502,
        "UnknownAgent": 404,
        "UnknownPool": 404,
        "AgentRpcTimeout": 504,
        "GenerationDisabled": 501,
        "InvalidRequest": 400,
    }
    for name, code in codes.items():
        error = getattr(paddler, name)
        assert issubclass(error, paddler.PaddlerError)
        assert error.code == code
    assert issubclass(paddler.BufferTimeout, TimeoutError)
    assert paddler.WireError.code == 400 and issubclass(paddler.WireError, ValueError)
    assert paddler.EmbeddingsNotEnabled.code == 501


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_each_package_exports_a_sorted_list_of_names_that_exist(package: str) -> None:
    """Every public package has a sorted ``__all__`` whose names all resolve."""
    module = importlib.import_module(package)
    names = module.__all__
    assert names == sorted(names, key=isort_order), package
    assert len(set(names)) == len(names), package
    for name in names:
        assert hasattr(module, name), f"{package}.{name}"


def test_no_name_means_two_things() -> None:
    """A name exported by two packages is the same object in both (a re-export).

    ``paddler.wire.EmbeddingsDisabled`` (an agent's result) and an error of the same name, or
    a client ``InferenceStream`` beside the balancer's, would let an import silently pick the
    wrong one. Hook names are the exception pluggy asks for: an implementation is named after
    its specification (``paddler.policies.paddler_select_agent``).
    """
    first: dict[str, tuple[str, object]] = {}
    clashes = []
    for package, name, obj in exported():
        if name.startswith("paddler_"):
            continue
        seen = first.setdefault(name, (package, obj))
        if seen[1] is not obj:
            clashes.append(f"{seen[0]}.{name} vs {package}.{name}")
    assert clashes == []


def test_top_level_names_are_re_exports_of_public_packages() -> None:
    """``paddler.X`` is the same object as ``paddler.<package>.X`` of a public package, so the
    top level never reaches into a private module."""
    elsewhere = {id(obj) for package, _, obj in exported() if package != "paddler"}
    for name in paddler.__all__:
        assert id(getattr(paddler, name)) in elsewhere, name


def test_every_top_level_name_is_documented() -> None:
    """Each name of ``paddler.__all__`` appears (in backticks) in docs/library.md."""
    text = LIBRARY_DOC.read_text()
    missing = [name for name in paddler.__all__ if f"`{name}`" not in text]
    assert missing == []


def test_every_exported_exception_is_a_paddler_error() -> None:
    """One error tree: an exception class any public package exports derives from
    ``PaddlerError``, so ``except paddler.PaddlerError`` catches whatever the library raises."""
    outside = [
        f"{package}.{name}"
        for package, name, obj in exported()
        if isinstance(obj, type)
        and issubclass(obj, BaseException)
        and not issubclass(obj, paddler.PaddlerError)
    ]
    assert outside == []
