"""``configure_externally_tagged_union`` on a fresh converter, with toy classes."""

from __future__ import annotations

import pytest
from attrs import frozen
from cattrs import Converter

from paddler.wire import make_converter
from paddler.wire._markers import newtype
from paddler.wire._strategies import configure_externally_tagged_union


@frozen
class Stop:
    """A unit variant."""


@newtype
@frozen
class Say:
    """A newtype variant."""

    text: str


@frozen
class Move:
    """A struct variant."""

    x: int
    y: int


@frozen
class Ping:
    """A unit variant nested under a group tag."""


@newtype
@frozen
class Echo:
    """A newtype variant nested under a group tag."""

    text: str


Command = Stop | Say | Move
Message = Ping | Echo | Move


@pytest.fixture
def converter() -> Converter:
    c = Converter(forbid_extra_keys=True)
    configure_externally_tagged_union(Command, c)
    configure_externally_tagged_union(
        Message, c, groups={"Notification": Ping | Echo}, tag_generator=lambda cl: cl.__name__
    )
    return c


def test_unit_variant_is_bare_string(converter: Converter) -> None:
    """A variant without fields is written as its name."""
    assert converter.unstructure(Stop(), Command) == "Stop"
    assert converter.structure("Stop", Command) == Stop()


def test_newtype_variant_carries_bare_value(converter: Converter) -> None:
    """A ``@newtype`` variant's one field is the bare value under the tag."""
    assert converter.unstructure(Say("Hi"), Command) == {"Say": "Hi"}
    assert converter.structure({"Say": "Hi"}, Command) == Say("Hi")


def test_struct_variant_carries_object(converter: Converter) -> None:
    """Other variants are an object of their fields under the tag."""
    assert converter.unstructure(Move(1, 2), Command) == {"Move": {"x": 1, "y": 2}}
    assert converter.structure({"Move": {"x": 1, "y": 2}}, Command) == Move(1, 2)


def test_group_nests_variants(converter: Converter) -> None:
    """Variants of a group are written one level deeper, under the group's tag."""
    assert converter.unstructure(Ping(), Message) == {"Notification": "Ping"}
    assert converter.unstructure(Echo("e"), Message) == {"Notification": {"Echo": "e"}}
    assert converter.structure({"Notification": {"Echo": "e"}}, Message) == Echo("e")
    assert converter.structure({"Move": {"x": 0, "y": 0}}, Message) == Move(0, 0)


def test_tag_generator_renames(converter: Converter) -> None:
    """``tag_generator`` picks the wire name of each variant."""
    c = Converter()
    configure_externally_tagged_union(Command, c, tag_generator=lambda cl: cl.__name__.upper())
    assert c.unstructure(Say("x"), Command) == {"SAY": "x"}
    assert c.structure("STOP", Command) == Stop()


def test_foreign_class_is_rejected(converter: Converter) -> None:
    """Writing a class that is not a variant of the union fails loudly."""
    with pytest.raises(TypeError, match="not a variant"):
        converter.unstructure(Ping(), Command)


def test_make_converter_builds_independent_converters() -> None:
    """``make_converter`` returns a new converter each time (no global state)."""
    assert make_converter() is not make_converter()
