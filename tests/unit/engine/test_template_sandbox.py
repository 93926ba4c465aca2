"""Chat templates render within a time and size budget (nested loops, doubling strings)."""

from __future__ import annotations

import threading

import pytest

from paddler.engine import _template_sandbox
from paddler.engine._template import ChatTemplate, TemplateRenderError

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(autouse=True)
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0.3 s budget keeps these tests quick; the default is 2 s."""
    monkeypatch.setattr(_template_sandbox, "RENDER_SECONDS", 0.3)


def render(source: str, messages: list[dict[str, str]] = HI) -> str:
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    return template.render(messages, add_generation_prompt=True, enable_thinking=False, tools=None)


def only_when(word: str, bomb: str) -> str:
    """A template that misbehaves only for one message (its load-time probe stays quick)."""
    return "{% if messages[-1]['content'] == '" + word + "' %}" + bomb + "{% endif %}" + CHATML


NESTED_RANGES = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
DOUBLING = (
    "{% set ns = namespace(s='x') %}"
    "{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"
)
EXPONENTIAL_MACRO = (
    "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}"
)
BIG_REPEAT = "{{ 'x' * 1000000000 }}"
BIG_WIDTH = "{{ '%1000000000d' % 1 }}"
BIG_STAR_WIDTH = "{{ '%*d' % (1000000000, 1) }}"
BIG_FORMAT_WIDTH = "{{ '{:>1000000000}'.format('x') }}"
HUGE_RANGE = "{% for i in range(1000000000) %}{% endfor %}"
LOUD_LOOP = "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}"


@pytest.mark.parametrize(
    "bomb",
    [
        NESTED_RANGES,
        DOUBLING,
        EXPONENTIAL_MACRO,
        BIG_REPEAT,
        BIG_WIDTH,
        BIG_STAR_WIDTH,
        BIG_FORMAT_WIDTH,
        HUGE_RANGE,
        LOUD_LOOP,
    ],
    ids=[
        "nested-ranges",
        "doubling",
        "macro",
        "repeat",
        "width",
        "star-width",
        "format-width",
        "range",
        "output",
    ],
)
def test_bombs_end_as_a_render_error(bomb: str):
    """Each one ends that render with an error naming the budget; the next render works."""
    source = only_when("bomb", bomb)
    with pytest.raises(TemplateRenderError) as info:
        render(source, [{"role": "user", "content": "bomb"}])
    assert "chat template" in str(info.value)
    assert render(source) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_the_deadline_holds_off_the_main_thread():
    """Without SIGALRM (a worker thread), the clock check at each loop step ends the render."""
    source = only_when("bomb", NESTED_RANGES)
    outcome: list[BaseException | str] = []

    def run() -> None:
        try:
            outcome.append(render(source, [{"role": "user", "content": "bomb"}]))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], TemplateRenderError)
    assert "took longer than" in str(outcome[0])


def test_ordinary_templates_are_unchanged():
    """Loops, macros, formatting and arithmetic within bounds render as in plain Jinja."""
    source = (
        "{% macro tag(r) %}<{{ r }}>{% endmacro %}"
        "{% for m in messages %}{{ tag(m['role']) }}{{ '%-6s|' % m['content'] }}"
        "{{ '{:>4}'.format(loop.index) }}{{ 2 ** 10 }}{{ '-' * 3 }}{% endfor %}"
        "{% for i in range(3) %}{{ i }}{% endfor %}"
    )
    assert render(source) == "<user>Hi    |   11024---012"


def test_long_numbers_in_text_are_not_widths():
    """Digits in the conversation or in literal text are data, not format widths."""
    source = (
        "{{ 'Call 123456789012: %s' % messages[0]['content'] }}{{ '{}'.format('98765432101') }}"
    )
    assert render(source, [{"role": "user", "content": "id 5550123456789"}]) == (
        "Call 123456789012: id 555012345678998765432101"
    )
