"""Swap without loss (issue 4 §3): a new desired state PUT while requests stream and wait in
the buffer drains, reloads, and loses nothing.

Two agents with two slots each (4 slots) take 16 conversation requests spread over a swap to
a chat template override that ignores the conversation and asks for the capital of France, so
output produced with the new state is recognisable ("Paris") and equal to what the same text
gives as a raw prompt. Requests already generating when the PUT lands finish on the old state.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from e2e_cluster import Cluster, conversation, desired_state, is_done, ndjson, running_cluster
from state_helpers import loaded
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.model]

AGENTS = [("swap-a", 2), ("swap-b", 2)]
PROMPT = "Say hello."
#: The prompt the override renders, whatever the conversation. It is written as a Jinja
#: expression because a template's own trailing newline is dropped (Jinja's default).
OVERRIDE_TEXT = (
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)
OVERRIDE = "{{ '" + OVERRIDE_TEXT + "' }}"
MAX_TOKENS = 48
#: ChatML without the default system prompt: the conversation goes through as it is.
PASS_THROUGH = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("swap"),
        model_path,
        agents=AGENTS,
        buffered_request_timeout=180000,
        inference_item_timeout=120000,
    ) as cluster:
        yield cluster


class Streamed(threading.Thread):
    """One NDJSON conversation request, read line by line in the background."""

    def __init__(self, url: str, index: int) -> None:
        super().__init__(daemon=True)
        self.url, self.index = url, index
        self.lines: list[dict[str, Any]] = []
        self.first_token = threading.Event()
        self.status: int | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        body = conversation(PROMPT, max_tokens=MAX_TOKENS)
        try:
            with httpx.stream("POST", self.url, json=body, timeout=300.0) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if line.strip():
                        self.lines.append(json.loads(line))
                        self.first_token.set()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc
        finally:
            self.first_token.set()

    @property
    def text(self) -> str:
        return "".join(
            line["Response"]["response"]["GeneratedToken"].get("ContentToken", "")
            for line in self.lines
            if "Response" in line
            and isinstance(line["Response"]["response"], dict)
            and isinstance(line["Response"]["response"].get("GeneratedToken"), dict)
        )


def launch(cluster: Cluster, index: int) -> Streamed:
    streamed = Streamed(f"{cluster.inference_url}/api/v1/continue_from_conversation_history", index)
    streamed.start()
    return streamed


def complete(cluster: Cluster, text: str, *, raw: bool = False) -> str:
    if raw:
        url = f"{cluster.inference_url}/api/v1/continue_from_raw_prompt"
        body: dict[str, Any] = {"raw_prompt": text, "max_tokens": MAX_TOKENS}
    else:
        url = f"{cluster.inference_url}/api/v1/continue_from_conversation_history"
        body = conversation(text, max_tokens=MAX_TOKENS)
    lines = ndjson(cluster.http.post(url, json=body, timeout=120.0))
    assert lines and is_done(lines[-1]), lines
    return "".join(
        line["Response"]["response"]["GeneratedToken"].get("ContentToken", "")
        for line in lines[:-1]
    )


def buffered(cluster: Cluster) -> int:
    response = cluster.http.get(f"{cluster.management_url}/api/v1/buffered_requests")
    return int(response.json()["buffered_requests_current"])


def test_sixteen_requests_over_a_swap_all_complete(cluster: Cluster) -> None:
    """8 requests (4 generating, 4 buffered), a PUT with a chat template override, 4 more
    during the drain and reload and 4 once the new state is applied: all 16 end with Done and
    no error; those generating at the PUT keep the old template, all the others use the new
    one."""
    cluster.wait_idle()
    old_text = complete(cluster, PROMPT)
    assert "Paris" not in old_text

    first = [launch(cluster, index) for index in range(8)]
    deadline = time.monotonic() + 120
    while sum(s.first_token.is_set() for s in first) < 4 or buffered(cluster) < 1:
        assert time.monotonic() < deadline, f"never 4 streaming + buffered\n{cluster.logs()}"
        assert all(s.failure is None for s in first), [s.failure for s in first]
        time.sleep(0.02)
    generating_at_put = [s for s in first if s.first_token.is_set()]
    state = desired_state(cluster.model_path)
    state["chat_template_override"] = {"content": OVERRIDE}
    state["use_chat_template_override"] = True
    response = cluster.put_state(state)
    assert response.status_code == 204, response.text

    during = [launch(cluster, index) for index in range(8, 12)]
    agents = cluster.wait_agents(
        lambda agents: (
            len(agents) == 2 and all(loaded(a) and a["uses_chat_template_override"] for a in agents)
        ),
        180,
        "both agents to apply the override",
    )
    assert {a["name"] for a in agents} == {name for name, _ in AGENTS}
    after = [launch(cluster, index) for index in range(12, 16)]

    everything = first + during + after
    for streamed in everything:
        streamed.join(240)
        assert not streamed.is_alive(), f"request {streamed.index} never ended\n{cluster.logs()}"
    for streamed in everything:
        assert streamed.failure is None, (streamed.index, streamed.failure)
        assert streamed.status == 200, (streamed.index, streamed.status)
        errors = [line for line in streamed.lines if "Error" in line]
        assert not errors, (streamed.index, errors)
        assert streamed.lines and is_done(streamed.lines[-1]), (streamed.index, streamed.lines)
    for streamed in generating_at_put:
        assert "Paris" not in streamed.text, (streamed.index, streamed.text)
    # Everything not yet generating when the PUT returned waited in the buffer: every slot
    # was busy with a request that had just started, so the agents report draining long
    # before one frees. All of these run with the new state.
    for streamed in everything:
        if streamed not in generating_at_put:
            assert "Paris" in streamed.text, (streamed.index, streamed.text)
    cluster.wait_idle()


def test_after_the_swap_requests_run_with_the_new_state(cluster: Cluster) -> None:
    """The applicable state and each agent report the override, and a conversation now gives
    exactly what the override's text gives as a raw prompt."""
    state = desired_state(cluster.model_path)
    state["chat_template_override"] = {"content": OVERRIDE}
    state["use_chat_template_override"] = True
    current = cluster.http.get(f"{cluster.management_url}/api/v1/balancer_desired_state").json()
    if current != state:  # this test also runs alone
        assert cluster.put_state(state).status_code == 204
    agents = cluster.wait_agents(
        lambda agents: (
            len(agents) == 2 and all(loaded(a) and a["uses_chat_template_override"] for a in agents)
        ),
        180,
        "both agents to apply the override",
    )
    applicable = cluster.http.get(
        f"{cluster.management_url}/api/v1/balancer_applicable_state"
    ).json()
    assert applicable["chat_template_override"] == {"content": OVERRIDE}
    for agent in agents:
        override = cluster.http.get(
            f"{cluster.management_url}/api/v1/agent/{agent['id']}/chat_template_override"
        )
        assert override.status_code == 200, override.text
        assert override.json() == {"content": OVERRIDE}

    chat_text = complete(cluster, PROMPT)
    raw_text = complete(cluster, OVERRIDE_TEXT, raw=True)
    assert "Paris" in chat_text
    assert chat_text == raw_text


def test_a_new_context_size_reloads_and_is_in_effect(cluster: Cluster) -> None:
    """A parameter-only change (context_size) goes through the same drain and reload: the
    applicable state shows it, and a prompt that fits the old context but not the new one now
    ends in-band with an eviction (and the agent lives on), while short requests complete."""
    long_prompt = "Summarise this: " + "the quick brown fox jumps over the lazy dog. " * 40
    body = conversation(long_prompt, max_tokens=8)
    url = f"{cluster.inference_url}/api/v1/continue_from_conversation_history"
    assert cluster.put_state(desired_state(cluster.model_path)).status_code == 204
    cluster.wait_agents(
        lambda agents: (
            len(agents) == 2
            and all(loaded(a) and not a["uses_chat_template_override"] for a in agents)
        ),
        180,
        "both agents to reload with the default context",
    )
    fits = ndjson(cluster.http.post(url, json=body, timeout=120.0))
    assert is_done(fits[-1]), fits[-1]
    usage = fits[-1]["Response"]["response"]["GeneratedToken"]["Done"]["usage"]
    assert usage["prompt_tokens"] > 256

    # A pass-through override rides along only so the reload is visible in the agents list.
    small = desired_state(cluster.model_path, context_size=256)
    small["chat_template_override"] = {"content": PASS_THROUGH}
    small["use_chat_template_override"] = True
    assert cluster.put_state(small).status_code == 204
    applicable = cluster.http.get(
        f"{cluster.management_url}/api/v1/balancer_applicable_state"
    ).json()
    assert applicable["inference_parameters"]["context_size"] == 256
    cluster.wait_agents(
        lambda agents: (
            len(agents) == 2 and all(loaded(a) and a["uses_chat_template_override"] for a in agents)
        ),
        180,
        "both agents to reload with context_size 256",
    )
    too_long = ndjson(cluster.http.post(url, json=body, timeout=120.0))
    terminal = too_long[-1]["Response"]["response"]["GeneratedToken"]  # in-band, not an Error
    # refused before it takes a slot, with the sizes (it was an eviction once the KV filled up)
    assert "this agent's context holds" in terminal["SamplerError"], terminal
    assert all(agent.alive for agent in cluster.agents.values()), cluster.logs()
    assert "Paris" not in complete(cluster, PROMPT)


def never_ending(request_id: str) -> str:
    grammar = {"type": "gbnf", "grammar": 'root ::= "ab" root', "root": "root"}
    params = {"raw_prompt": "Go:", "max_tokens": 100000, "grammar": grammar}
    return json.dumps({"Request": {"id": request_id, "request": {"ContinueFromRawPrompt": params}}})


@pytest.mark.anyio
async def test_a_swap_waits_for_requests_in_flight_and_proceeds_when_they_are_cancelled(
    cluster: Cluster,
) -> None:
    """Four requests that never end hold every slot: after a PUT they keep streaming (the
    swap does not cut them), and when their client goes away the agents finish draining and
    apply the new state."""
    assert cluster.put_state(desired_state(cluster.model_path)).status_code == 204
    await anyio.to_thread.run_sync(
        lambda: cluster.wait_agents(
            lambda agents: (
                len(agents) == 2
                and all(loaded(a) and not a["uses_chat_template_override"] for a in agents)
            ),
            180,
            "both agents with the default state",
        )
    )
    async with connect(cluster.inference_socket_url) as sock:
        for index in range(4):
            await sock.send(never_ending(f"forever-{index}"))
        counts: dict[str, int] = {}
        with anyio.fail_after(120):
            while len(counts) < 4:
                message = json.loads(await sock.recv())
                request_id = message["Response"]["request_id"]
                counts[request_id] = counts.get(request_id, 0) + 1
        state = desired_state(cluster.model_path)
        state["chat_template_override"] = {"content": PASS_THROUGH}
        state["use_chat_template_override"] = True
        response = await anyio.to_thread.run_sync(lambda: cluster.put_state(state))
        assert response.status_code == 204
        after_put = dict.fromkeys(counts, 0)
        with anyio.fail_after(120):
            while min(after_put.values()) < 20:
                message = json.loads(await sock.recv())
                token = message["Response"]["response"]["GeneratedToken"]
                assert "ContentToken" in token, message
                after_put[message["Response"]["request_id"]] += 1
    await anyio.to_thread.run_sync(
        lambda: cluster.wait_agents(
            lambda agents: (
                len(agents) == 2
                and all(loaded(a) and a["uses_chat_template_override"] for a in agents)
            ),
            180,
            "both agents to apply the new state once the requests were cancelled",
        )
    )
    cluster.wait_idle()
