"""The generic format's section parser and the stop-string filter, fed token by token."""

from __future__ import annotations

from paddler.engine._classifier import Section, StopStringFilter
from paddler.engine._formats import FORMATS, StreamParser


def TokenClassifier(section: Section = Section.CONTENT) -> StreamParser:
    """The generic format's parser (Hermes markers, plain text is content)."""
    parser = FORMATS["generic"].parser(tools=False)
    parser.section = section
    return parser


def feed_all(
    classifier: StreamParser, pieces: list[str]
) -> tuple[dict[Section, str], dict[Section, int]]:
    text: dict[Section, str] = {s: "" for s in Section}
    counts: dict[Section, int] = {s: 0 for s in Section}
    steps = [classifier.feed(p) for p in pieces] + [classifier.flush()]
    for step in steps:
        for piece in step.pieces:
            text[piece.section] += piece.text
        for section, n in step.counts:
            counts[section] += n
    return text, counts


def test_plain_text_is_content_and_every_token_is_counted_once() -> None:
    text, counts = feed_all(TokenClassifier(), ["Hello", " <b>", " world", "<", "3"])
    assert text[Section.CONTENT] == "Hello <b> world<3"
    assert counts == {
        Section.CONTENT: 5,
        Section.REASONING: 0,
        Section.TOOL_CALL: 0,
        Section.UNDETERMINED: 0,
    }


def test_markers_split_over_tokens_are_hidden_and_switch_sections() -> None:
    pieces = [
        "<",
        "think",
        ">",
        "hmm",
        "</th",
        "ink>",
        "Answer",
        " <tool",
        "_call>",
        '{"a": 1}',
        "</tool_call>",
        "!",
    ]
    text, counts = feed_all(TokenClassifier(), pieces)
    assert text == {
        Section.CONTENT: "Answer !",
        Section.REASONING: "hmm",
        Section.TOOL_CALL: '{"a": 1}',
        Section.UNDETERMINED: "",
    }
    assert sum(counts.values()) == len(pieces)
    assert counts[Section.TOOL_CALL] >= 2


def test_starting_in_reasoning_for_templates_that_open_think() -> None:
    text, _ = feed_all(TokenClassifier(section=Section.REASONING), ["plan", "</think>", "done"])
    assert text[Section.REASONING] == "plan"
    assert text[Section.CONTENT] == "done"


def test_tool_call_close_is_reported_in_order() -> None:
    classifier = TokenClassifier()
    classifier.feed("<tool_call>")
    step = classifier.feed("{}</tool_call>after")
    assert [(p.section, p.text, p.closes_tool_call, p.call_text) for p in step.pieces] == [
        (Section.TOOL_CALL, "{}", False, ""),
        (Section.TOOL_CALL, "", True, "{}"),
        (Section.CONTENT, "after", False, ""),
    ]


def test_stop_filter_holds_back_a_possible_stop_and_cuts_at_it() -> None:
    stop = StopStringFilter(("END",))
    assert stop.feed("abc E") == ("abc ", False)
    assert stop.feed("N") == ("", False)
    assert stop.feed("D and more") == ("", True)


def test_stop_filter_releases_text_that_was_not_a_stop() -> None:
    stop = StopStringFilter(("END",))
    assert stop.feed("E") == ("", False)
    assert stop.feed("x") == ("Ex", False)
    assert stop.feed("EN") == ("", False)
    assert stop.flush() == "EN"


def test_no_stop_strings_pass_everything_through() -> None:
    assert StopStringFilter(()).feed("END") == ("END", False)
