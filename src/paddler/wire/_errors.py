"""``WireError``: a document that is not what the wire spec says, with the JSON paths."""

from __future__ import annotations

from cattrs import transform_error
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.v import format_exception

from paddler.errors import PaddlerError  # a leaf module: wire still depends on nothing else

__all__ = ["WireError", "WireProblem", "describe_structure_error"]

_EXTRA = "\x00extra\x00"
_SEP = "\x1f"


class WireError(PaddlerError, ValueError):
    """Raised by ``converter.loads`` for invalid JSON or a document that does not fit the type.

    ``problems`` holds one ``"$.path: what is wrong"`` line per problem; the message joins
    them with ``"; "``.
    """

    code = 400

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class WireProblem(ValueError):
    """Raised by our own hooks; its message is already the description of the problem."""


def _format(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        return _EXTRA + _SEP.join(sorted(exc.extra_fields))
    if isinstance(exc, WireProblem):
        return str(exc)
    return format_exception(exc, type_)


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def describe_structure_error(exc: BaseException) -> list[str]:
    """``cattrs.transform_error`` rendered as ``"$.a.b: problem"`` lines, one per extra key."""
    problems: list[str] = []
    for line in transform_error(exc, path="$", format_exception=_format):
        message, _, path = line.rpartition(" @ ")
        if message.startswith(_EXTRA):
            problems.extend(
                f"{_key_path(path, key)}: extra field" for key in message[len(_EXTRA) :].split(_SEP)
            )
        else:
            problems.append(f"{path}: {message}")
    return problems
