"""A Jinja sandbox with a time and size budget per render.

Jinja's sandbox stops attribute access, not work: a chat template override with two nested
``range(100000)`` loops, a self-doubling string or an exponential macro runs for hours on the
worker's only thread, and every slot waits. Each render here gets a deadline (a SIGALRM timer
when it runs on the main thread, as the engine worker's scheduler does; a clock check at every
loop step and call otherwise), a cap on its output, and caps on what one operation may build.
Crossing any of them raises `TemplateBudgetExceeded`, which the engine reports as that
request's ``ChatTemplateError``.
"""

from __future__ import annotations

import contextlib
import operator
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from jinja2 import Template
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "MAX_RANGE",
    "MAX_RENDER_CHARS",
    "RENDER_SECONDS",
    "BoundedSandbox",
    "TemplateBudgetExceeded",
    "render_bounded",
]

#: Longest a render may take. Real chat templates need milliseconds.
RENDER_SECONDS = 2.0
#: Longest rendered prompt (characters); also the cap on any string or list one operation makes.
MAX_RENDER_CHARS = 16 * 1024 * 1024
#: Largest ``range()`` a template may ask for.
MAX_RANGE = 100_000
#: Largest integer argument a template may pass to a call (widths, repeats, ranges).
_MAX_CALL_INT = MAX_RENDER_CHARS
#: A width or precision of 10^7 or more in a %-format or a str.format field (digits elsewhere,
#: e.g. a phone number in the text, are fine).
_PERCENT_WIDTH = re.compile(r"%[-+ #0]*(?:\d{8,}|\d*\.\d{8,})")
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*\d{8,}[^{}]*\}")


class TemplateBudgetExceeded(Exception):
    """A render ran past its deadline or would build something too large."""


class _Budget:
    """The deadline of the render in progress (one per thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def deadline(self) -> float | None:
        return getattr(self._local, "deadline", None)

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._local.deadline = value

    def check(self) -> None:
        deadline = self.deadline
        if deadline is not None and time.monotonic() > deadline:
            raise TemplateBudgetExceeded(
                f"the chat template took longer than {RENDER_SECONDS} s to render"
            )


_budget = _Budget()


def _bounded_range(*args: int) -> Iterator[int]:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateBudgetExceeded(
            f"range() of {len(rng)} items in the chat template; the limit is {MAX_RANGE}"
        )
    for value in rng:
        _budget.check()
        yield value


def _sized(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_RENDER_CHARS:
        raise TemplateBudgetExceeded(
            f"the chat template built a value of {len(value)} items; "
            f"the limit is {MAX_RENDER_CHARS}"
        )
    return value


def _mul(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        sequence = isinstance(seq, str | bytes | list | tuple) and isinstance(count, int)
        if sequence and len(seq) * count > MAX_RENDER_CHARS:  # refuse before allocating
            raise TemplateBudgetExceeded(
                f"the chat template repeats a value {count} times; "
                f"the limit is {MAX_RENDER_CHARS} items"
            )
    return _sized(operator.mul(left, right))


def _pow(left: Any, right: Any) -> Any:
    integers = isinstance(left, int) and isinstance(right, int) and abs(left) > 1
    if integers and right * max(left.bit_length(), 1) > 1_000_000:
        raise TemplateBudgetExceeded("the chat template computes too large a power")
    return operator.pow(left, right)


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        values = right if isinstance(right, tuple) else (right,)
        star = "*" in left and any(_big_int(v) for v in values)  # '%*d' % (10**9, 1)
        if star or _PERCENT_WIDTH.search(left):
            raise TemplateBudgetExceeded("the chat template formats with too large a width")
    return _sized(operator.mod(left, right))


def _big_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_CALL_INT


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """`ImmutableSandboxedEnvironment` whose loops, calls and operators count against a budget."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = _bounded_range
        self.binop_table["+"] = lambda a, b: _sized(operator.add(a, b))
        self.binop_table["*"] = _mul
        self.binop_table["**"] = _pow
        self.binop_table["%"] = _mod

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _budget.check()
        for value in (*args, *kwargs.values()):
            if _big_int(value):
                raise TemplateBudgetExceeded(
                    f"the chat template passed {value} to a call; the limit is {_MAX_CALL_INT}"
                )
        owner = getattr(__obj, "__self__", None)
        if _is_formatter(__obj) and isinstance(owner, str) and _BRACE_WIDTH.search(owner):
            raise TemplateBudgetExceeded("the chat template formats with too large a width")
        return _sized(super().call(__context, __obj, *args, **kwargs))


def _is_formatter(obj: Any) -> bool:
    return getattr(obj, "__name__", None) in ("format", "format_map")


def render_bounded(template: Template, **variables: Any) -> str:
    """Render within the budget; raises `TemplateBudgetExceeded` when it runs out."""
    with _deadline(RENDER_SECONDS):
        size = 0
        chunks: list[str] = []
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_RENDER_CHARS:
                raise TemplateBudgetExceeded(
                    f"the chat template rendered more than {MAX_RENDER_CHARS} characters"
                )
            chunks.append(chunk)
        return "".join(chunks)


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Set the clock deadline, plus a SIGALRM timer when this is the main thread.

    The timer also stops work that never passes a loop step or call (one long filter chain,
    a loop over a big list). It is only armed when no other timer is running.
    """
    outer = _budget.deadline
    _budget.deadline = time.monotonic() + seconds if outer is None else outer
    armed = [False]

    def on_alarm(signum: int, frame: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise TemplateBudgetExceeded(
                f"the chat template took longer than {RENDER_SECONDS} s to render"
            )

    previous: Any = None
    use_alarm = (
        outer is None
        and threading.current_thread() is threading.main_thread()
        and hasattr(signal, "setitimer")
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, on_alarm)
        armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if use_alarm:
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        _budget.deadline = outer
