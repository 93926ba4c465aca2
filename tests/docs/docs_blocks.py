"""Collect the fenced code blocks of README.md and docs/*.md, and run them as a reader would.

A uniquely named module (not conftest) so that test modules import it unambiguously.

Each block is run by its language, in page order, against a real cluster:

* ``python``: executed, as ``__main__``, in one namespace per page (later blocks may use what
  earlier ones defined, as in a notebook);
* ``sh``: run with ``bash -euo pipefail`` in the page's working directory;
* ``json``: parsed (a block of one JSON document per line is NDJSON);
* ``toml``: parsed.

``text`` and ``promql`` blocks are output and queries, not programs. An HTML comment on the
line before a fence gives a directive:

* ``<!-- docs-test: not-run: <reason> -->``: the block is not run (e.g. it starts a server that
  runs until Ctrl+C); the reason is required;
* ``<!-- docs-test: file: <name> -->``: the block is written to ``<name>`` in the working
  directory instead of being run (a ``state.json`` a later ``curl`` sends, a plugin module);
* ``<!-- docs-test: copy-of: examples/<x>.py -->``: the block is that example, inlined (there
  is no docs build to include it); it must equal the file, and it runs.

A ``"model.gguf"`` in a block stands for "your model" and is given the demo model's path.

Docs use the default addresses (``127.0.0.1:8060`` management, ``8061`` inference, ``8062``
panel, ``8063`` OpenAI); the runner points them at the test cluster's ports.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = ("python", "sh", "json", "toml")
PROSE_LANGUAGES = ("text", "promql")
DEFAULT_PORTS = {"management": 8060, "inference": 8061, "panel": 8062, "openai": 8063}

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_DIRECTIVE = re.compile(
    r"^<!--\s*docs-test:\s*(?P<kind>not-run|file|copy-of)\s*:\s*(?P<arg>.*?)\s*-->$"
)


@attrs.frozen
class Block:
    page: str
    line: int
    language: str
    code: str
    not_run: str | None = None
    file: str | None = None
    copy_of: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page under docs/ (not docs/dev/, notes for contributors)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text().splitlines()
    name = str(page.relative_to(ROOT))
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start = index
        indent = len(opening["indent"])
        body: list[str] = []
        index += 1
        while index < len(lines) and not re.match(rf"^ {{{indent}}}```\s*$", lines[index]):
            body.append(lines[index][indent:])
            index += 1
        if index == len(lines):
            raise AssertionError(f"{name}:{start + 1}: a code block is never closed")
        index += 1
        previous = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        directive = _DIRECTIVE.match(previous)
        not_run = file = copy_of = None
        if directive is not None:
            if directive["kind"] == "not-run":
                not_run = directive["arg"]
                assert not_run, f"{name}:{start + 1}: a not-run block must say why"
            elif directive["kind"] == "file":
                file = directive["arg"]
            else:
                copy_of = directive["arg"]
        code = "\n".join(body) + "\n"
        yield Block(name, start + 1, opening["lang"], code, not_run, file, copy_of)


def check_language(block: Block) -> None:
    known = (*RUN_LANGUAGES, *PROSE_LANGUAGES)
    assert block.language in known, (
        f"{block.where}: a code block needs a language, one of {', '.join(known)}"
        f" (got {block.language!r})"
    )


def check_copy(block: Block) -> None:
    if block.copy_of is not None:
        assert block.code == (ROOT / block.copy_of).read_text(), (
            f"{block.where}: differs from {block.copy_of}; paste the file again"
        )


def pointed_at(code: str, ports: dict[str, int], model_path: Path | None = None) -> str:
    """The block with the default addresses replaced by the test cluster's."""
    if model_path is not None:
        code = code.replace('"model.gguf"', repr(str(model_path)))
    for service, default in DEFAULT_PORTS.items():
        code = re.sub(
            rf"(?<![\d.])(127\.0\.0\.1|localhost):{default}\b", rf"\1:{ports[service]}", code
        )
    return code


def parse_json(block: Block, code: str) -> None:
    try:
        json.loads(code)
    except json.JSONDecodeError:
        for number, line in enumerate(code.splitlines()):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as exc:
                    raise AssertionError(
                        f"{block.page}:{block.line + 1 + number}: not JSON: {exc}"
                    ) from None


def parse_toml(block: Block, code: str) -> None:
    try:
        tomllib.loads(code)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"{block.where}: not TOML: {exc}") from None
