"""``configure_externally_tagged_union``: serde's default enum encoding for cattrs.

serde writes an enum variant as

* a bare string when it has no data (unit variant): ``"None"``, ``"DeregisterAgent"``;
* a one-key object otherwise: ``{"ContentToken":"Hi"}`` for a newtype variant (the class is
  marked ``@newtype`` and its one field is the bare value), ``{"Done":{"usage":{...}}}`` for a
  struct variant (the class's own fields).

Paddler nests enums (``{"Notification":{"RegisterAgent":{...}}}``). We keep the Python union
flat, one class per leaf, and describe the nesting with ``groups``: a mapping from an outer
tag to the (inner) union whose variants sit under it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any

import attrs
from cattrs import Converter
from cattrs.errors import AttributeValidationNote, ClassValidationError

from ._errors import WireProblem
from ._markers import is_newtype

__all__ = ["configure_externally_tagged_union", "default_tag_generator", "union_members"]

Unstructure = Callable[[Any], Any]
Structure = Callable[[Any], Any]


def default_tag_generator(cl: type) -> str:
    return cl.__name__


def union_members(union: Any) -> tuple[type, ...]:
    """The classes of a union (a lone class counts as a union of one)."""
    if isinstance(union, UnionType) or typing.get_origin(union) is typing.Union:
        return typing.get_args(union)
    return (union,)


def _wrap(exc: Exception, tag: str, type_: Any, cl: type) -> ClassValidationError:
    exc.add_note(AttributeValidationNote(f"Structuring variant {tag}", tag, type_))
    return ClassValidationError(f"While structuring {cl.__name__}", [exc], cl)


def _variant_codec(cl: type, tag: str, converter: Converter) -> tuple[Unstructure, Structure]:
    """How one variant's payload (what sits under its tag) is written and read."""
    fields = attrs.fields(attrs.resolve_types(cl))
    if not fields:
        return (lambda _obj: None), (lambda _payload: cl())
    if is_newtype(cl):
        (only,) = fields
        field_type = only.type

        def unstructure_newtype(obj: Any) -> Any:
            return converter.unstructure(getattr(obj, only.name), field_type)

        def structure_newtype(payload: Any) -> Any:
            try:
                value = converter.structure(payload, field_type)
            except Exception as exc:
                raise _wrap(exc, tag, field_type, cl) from None
            return cl(value)

        return unstructure_newtype, structure_newtype

    def unstructure_struct(obj: Any) -> Any:
        return converter.unstructure(obj, cl)

    def structure_struct(payload: Any) -> Any:
        try:
            return converter.structure(payload, cl)
        except Exception as exc:
            raise _wrap(exc, tag, cl, cl) from None

    return unstructure_struct, structure_struct


@attrs.frozen
class _Codec:
    """Reads and writes the externally tagged encoding of a flat list of variant classes."""

    name: str
    units: Mapping[str, type]
    readers: Mapping[str, Structure]
    writers: Mapping[type, tuple[str, Unstructure | None]]

    def unstructure(self, obj: Any) -> Any:
        try:
            tag, write = self.writers[obj.__class__]
        except KeyError:
            raise TypeError(f"{obj.__class__.__name__} is not a variant of {self.name}") from None
        if write is None:
            return tag
        return {tag: write(obj)}

    def structure(self, value: Any) -> Any:
        if isinstance(value, str):
            if value in self.units:
                return self.units[value]()
            if value in self.readers:
                raise WireProblem(f"variant {value!r} of {self.name} needs data")
            raise WireProblem(self._unknown(value))
        if isinstance(value, dict) and len(value) == 1:
            ((tag, payload),) = value.items()
            if tag in self.readers:
                return self.readers[tag](payload)
            if tag in self.units:
                raise WireProblem(f"variant {tag!r} of {self.name} is a bare string")
            raise WireProblem(self._unknown(tag))
        raise WireProblem(f"expected a {self.name} variant: a name or an object with one key")

    def _unknown(self, tag: object) -> str:
        expected = ", ".join(sorted([*self.units, *self.readers]))
        return f"unknown variant {tag!r} of {self.name}, expected one of: {expected}"


def _make_codec(
    name: str,
    members: tuple[type, ...],
    converter: Converter,
    tag_generator: Callable[[type], str],
    groups: Mapping[str, Any],
) -> _Codec:
    units: dict[str, type] = {}
    readers: dict[str, Structure] = {}
    writers: dict[type, tuple[str, Unstructure | None]] = {}
    grouped: set[type] = set()
    for group_tag, group_union in groups.items():
        inner = _make_codec(group_tag, union_members(group_union), converter, tag_generator, {})
        group_members = union_members(group_union)
        grouped.update(group_members)

        def read_group(payload: Any, _inner: _Codec = inner, _tag: str = group_tag) -> Any:
            try:
                return _inner.structure(payload)
            except Exception as exc:
                raise _wrap(exc, _tag, None, object) from None

        readers[group_tag] = read_group
        for member in group_members:
            writers[member] = (group_tag, inner.unstructure)
    for cl in members:
        if cl in grouped:
            continue
        tag = tag_generator(cl)
        write, read = _variant_codec(cl, tag, converter)
        if attrs.fields(cl):
            readers[tag] = read
            writers[cl] = (tag, write)
        else:
            units[tag] = cl
            writers[cl] = (tag, None)
    return _Codec(name, units, readers, writers)


def configure_externally_tagged_union(
    union: Any,
    converter: Converter,
    *,
    tag_generator: Callable[[type], str] = default_tag_generator,
    groups: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> None:
    """Register hooks so ``union`` is read and written the way serde tags enums by default.

    ``tag_generator`` names each variant (default: the class name). ``groups`` maps an outer
    tag to a sub-union whose variants are written nested under it.
    """
    codec = _make_codec(
        name or getattr(union, "__name__", None) or "union",
        union_members(union),
        converter,
        tag_generator,
        groups or {},
    )
    converter.register_unstructure_hook(union, codec.unstructure)
    converter.register_structure_hook(union, lambda value, _: codec.structure(value))
