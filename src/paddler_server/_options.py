"""Click parameter types for Paddler's flags: ``host:port`` addresses and millisecond durations.

Addresses keep the string the user typed (the admin panel shows it) next to the parsed host
and port; DNS names are allowed and resolved by the socket layer when binding or dialing.
"""

from __future__ import annotations

import attrs
import click

__all__ = [
    "ADDRESS",
    "BYTE_SIZE",
    "MILLISECONDS",
    "Address",
    "parse_address",
]


@attrs.frozen
class Address:
    """A ``host:port`` flag value; ``original`` is exactly what was typed."""

    host: str
    port: int
    original: str

    def __str__(self) -> str:
        return self.original


def parse_address(text: str) -> Address:
    """Parse ``host:port`` (``[v6]:port`` for IPv6); raise ``ValueError`` saying what is wrong."""
    value = text.strip()
    if "://" in value:
        raise ValueError(f"{text!r} looks like a URL; give host:port, e.g. 127.0.0.1:8060")
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port, e.g. 127.0.0.1:8060")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} has no valid port (0-65535)")
    return Address(host=host, port=int(port_text), original=value)


class AddressType(click.ParamType):  # type: ignore[type-arg]  # generic only in click 8.2+ stubs
    name = "HOST:PORT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Address:
        if isinstance(value, Address):
            return value
        try:
            return parse_address(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class MillisecondsType(click.ParamType):  # type: ignore[type-arg]
    """A non-negative integer number of milliseconds."""

    name = "MILLISECONDS"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            if not text.isdigit():
                self.fail(
                    f"{value!r} is not a whole number of milliseconds (e.g. 10000)", param, ctx
                )
            number = int(text)
        if number < 0:
            self.fail("must not be negative", param, ctx)
        return number


class ByteSizeType(click.ParamType):  # type: ignore[type-arg]
    """A size in bytes: ``1073741824``, ``500MB``, ``64GiB``; ``0`` where it means no limit."""

    name = "SIZE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        from paddler.agent._download_size import parse_byte_size  # lazy: keeps --help quick

        try:
            return parse_byte_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


ADDRESS = AddressType()
BYTE_SIZE = ByteSizeType()
MILLISECONDS = MillisecondsType()
