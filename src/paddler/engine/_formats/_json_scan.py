"""Follow a JSON value as it streams in: where its strings are, and where it ends.

Tool-call sections hold JSON, and JSON strings may contain anything, including the marker
that closes the section (`"</tool_call>"`). The scanner lets a parser ignore markers inside
strings and notice when the value is complete, without parsing the JSON.
"""

from __future__ import annotations

import attrs

_OPEN = "{["
_CLOSE = "}]"


@attrs.define
class JsonScan:
    """Incremental scan state over the text of one tool-call section.

    The value starts at the first `{` or `[` when it is the first non-blank text; a section
    whose text starts otherwise is not JSON, unless `after` is given: then the value starts
    after that text (Mistral's `name[ARGS]{...}`).
    """

    after: str | None = None
    started: bool = False
    not_json: bool = False
    done: bool = False
    in_string: bool = False
    escape: bool = False
    depth: int = 0
    _prefix: str = ""

    def copy(self) -> JsonScan:
        return attrs.evolve(self)

    def feed(self, text: str) -> int | None:
        """Advance over `text`; the index just past the value's end, if it ended in `text`."""
        for i, ch in enumerate(text):
            if self.done or self.not_json:
                return None
            if not self.started:
                if ch in _OPEN and not self._prefix.strip():
                    self.started = True
                    self.depth = 1
                    continue
                self._prefix += ch
                if self.after is not None:
                    if self._prefix.endswith(self.after):
                        self._prefix = ""
                        self.after = None
                elif self._prefix.strip():
                    self.not_json = True
                continue
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif ch == "\\":
                    self.escape = True
                elif ch == '"':
                    self.in_string = False
                continue
            if ch == '"':
                self.in_string = True
            elif ch in _OPEN:
                self.depth += 1
            elif ch in _CLOSE:
                self.depth -= 1
                if self.depth == 0:
                    self.done = True
                    return i + 1
        return None

    def find_outside_strings(self, text: str, marker: str) -> int | None:
        """Index of the first `marker` in `text` that is not inside a JSON string.

        Does not advance this scan (the caller feeds the text once it is emitted).
        """
        probe = self.copy()
        pos = 0
        while True:
            index = text.find(marker, pos)
            if index < 0:
                return None
            probe.feed(text[pos:index])
            if not probe.in_string or probe.not_json or probe.done:
                return index
            probe.feed(text[index : index + 1])
            pos = index + 1
