"""The worker's output pipe: a request's first token and its end leave at once, later tokens
leave together once `COALESCE_SECONDS` have passed, and the worker never sleeps on held output.

Real pipes and the worker's own `PipeChannel`; the decode steps are the test's calls, so this
needs no model. The worker's clock is the test's: time passes only where a test says so, so a
slow machine cannot release what a test expects held.
"""

from __future__ import annotations

import os
import select
import types
from collections.abc import Iterator

import pytest

from paddler.engine import _worker as worker
from paddler.engine._scheduler import Outbox, SchedulerCounters
from paddler.engine._worker import PipeChannel, StartsAndEnds
from paddler.engine._worker_wire import Delivery, FrameDecoder, encode
from paddler.wire import ContentToken, Done, TokenUsage

END = Done(
    TokenUsage(
        prompt_tokens=3,
        cached_prompt_tokens=0,
        input_image_tokens=0,
        input_audio_tokens=0,
        content_tokens=3,
        reasoning_tokens=0,
        tool_call_tokens=0,
        undeterminable_tokens=0,
    )
)


class Clock:
    """The worker's ``time.monotonic``; ``advance`` is the only way time passes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(worker, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


@pytest.fixture
def pipes(clock: Clock) -> Iterator[tuple[PipeChannel, int, int]]:
    """The channel, the engine's end of its output (to read) and of its input (to write)."""
    to_worker_r, to_worker_w = os.pipe()
    from_worker_r, from_worker_w = os.pipe()
    os.set_blocking(from_worker_r, False)
    yield PipeChannel(to_worker_r, from_worker_w), from_worker_r, to_worker_w
    for fd in (to_worker_r, to_worker_w, from_worker_r, from_worker_w):
        os.close(fd)


def read_now(fd: int) -> list[object]:
    """What the engine would read at this moment (each message once)."""
    try:
        data = os.read(fd, 1 << 20)
    except BlockingIOError:
        return []
    return FrameDecoder().feed(data)


def step(channel: PipeChannel, pacing: StartsAndEnds, outbox: Outbox) -> None:
    """What the worker does after each decode step."""
    channel.send(Delivery(outbox, SchedulerCounters()), urgent=pacing.in_outbox(outbox))


def token(text: str) -> ContentToken:
    return ContentToken(text)


def streaming(pipes: tuple[PipeChannel, int, int]) -> tuple[PipeChannel, int, StartsAndEnds]:
    """Request 1 has started: its first token has left at once and been read."""
    channel, out, _ = pipes
    pacing = StartsAndEnds()
    step(channel, pacing, [(1, [token("a")], False)])
    assert len(read_now(out)) == 1, "the first token waited"
    return channel, out, pacing


def then(channel: PipeChannel, pacing: StartsAndEnds, *texts: str) -> None:
    """Later tokens of request 1, one decode step each."""
    for text in texts:
        step(channel, pacing, [(1, [token(text)], False)])


def test_first_token_and_end_leave_at_once_and_tokens_between_are_held(
    pipes: tuple[PipeChannel, int, int],
) -> None:
    channel, out, pacing = streaming(pipes)
    then(channel, pacing, "b", "c")
    assert read_now(out) == [], "a later token left on its own right after the first"
    step(channel, pacing, [(1, [END], True)])
    messages = read_now(out)
    assert [m.outbox[0][1][0] for m in messages] == [  # type: ignore[attr-defined]
        token("b"),
        token("c"),
        END,
    ], "the end did not take the held tokens along, in order"


def test_held_tokens_leave_once_the_interval_has_passed(
    pipes: tuple[PipeChannel, int, int], clock: Clock
) -> None:
    channel, out, pacing = streaming(pipes)
    then(channel, pacing, "b")
    clock.advance(worker.COALESCE_SECONDS / 2)
    channel.take(0.0)
    assert read_now(out) == [], "a held token left before the interval"
    clock.advance(worker.COALESCE_SECONDS)  # (1.5 intervals in all: no float rounding edge)
    channel.take(0.0)  # the next step's command poll, while the request decodes on
    assert len(read_now(out)) == 1, "a held token outlived the interval"
    then(channel, pacing, "c", "d")
    assert read_now(out) == []
    clock.advance(worker.COALESCE_SECONDS * 1.5)
    then(channel, pacing, "e")
    assert len(read_now(out)) == 3, "the step after the interval did not send what was held"


def test_a_second_request_starting_is_not_held_behind_another_stream(
    pipes: tuple[PipeChannel, int, int],
) -> None:
    channel, out, pacing = streaming(pipes)
    then(channel, pacing, "b")
    step(channel, pacing, [(1, [token("c")], False), (2, [token("first")], False)])
    assert len(read_now(out)) == 2, "request 2's first token waited"  # with the held step


def test_an_idle_worker_releases_held_output_before_it_waits_for_commands(
    pipes: tuple[PipeChannel, int, int],
) -> None:
    channel, out, pacing = streaming(pipes)
    then(channel, pacing, "b")
    os.write(pipes[2], encode(Delivery([], SchedulerCounters())))  # so that take returns
    channel.take(0.5)  # a blocking wait: no slot busy
    assert select.select([out], [], [], 0)[0], "held output stayed behind a blocking wait"
    assert len(read_now(out)) == 1
