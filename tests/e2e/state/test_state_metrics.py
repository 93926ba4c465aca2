"""Metrics that explain latency (issue 4 §4): ``/metrics`` and the StatsD push, read the way a
monitoring system would: Prometheus text through ``prometheus_client``'s own parser, StatsD
datagrams from a UDP socket the test opens.

The module's cluster: one balancer (``--statsd-addr`` pointing at the test's socket, every
200 ms; no buffering, so a third concurrent request is refused with 503) and one 2-slot agent.
Counter checks use deltas, so the tests stay independent of each other's requests.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from e2e_cluster import Cluster, conversation, is_done, ndjson, running_cluster
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PADDLER_GAUGES = ("paddler_slots_processing", "paddler_slots_total", "paddler_requests_buffered")
#: StatsD names: Paddler's client joins the prefix and the name with one dot.
STATSD_GAUGES = tuple(name.replace("paddler_", "paddler_.", 1) for name in PADDLER_GAUGES)
NEVER_ENDING = {"type": "gbnf", "grammar": 'root ::= "ab" root', "root": "root"}


class StatsdListener:
    """A UDP socket on 127.0.0.1 that collects ``name:value|g`` datagrams (one gauge each)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def wait_for(self, wanted: dict[str, str | None], timeout: float = 20.0) -> dict[str, str]:
        """Read datagrams until every name in ``wanted`` is seen (with that value, unless None)."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        datagrams: list[str] = []
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65535).decode("ascii")
            except TimeoutError:
                break
            datagrams.append(data)
            assert "\n" not in data, f"one gauge per datagram, as Paddler sends: {data!r}"
            for line in data.splitlines():
                name, _, rest = line.partition(":")
                value, _, kind = rest.partition("|")
                assert kind == "g", f"not a gauge: {line!r}"
                seen[name] = value
            if all(name in seen and value in (None, seen[name]) for name, value in wanted.items()):
                return seen
        raise AssertionError(f"StatsD: wanted {wanted}, got datagrams {datagrams[-5:]}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, statsd: StatsdListener
) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("metrics"),
        model_path,
        agents=[("meter", 2)],
        statsd_addr=f"127.0.0.1:{statsd.port}",
        statsd_reporting_interval=200,
        max_buffered_requests=0,
    ) as cluster:
        yield cluster


def scrape(cluster: Cluster) -> dict[str, Any]:
    """Every sample of ``/metrics`` by ``name`` or ``name{label=value,...}`` (parsed)."""
    response = cluster.http.get(f"{cluster.management_url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, Any] = {"_families": {}}
    for family in text_string_to_metric_families(response.text):
        samples["_families"][family.name] = family.type
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def delta(after: dict[str, Any], before: dict[str, Any], name: str) -> float:
    return float(after.get(name, 0.0)) - float(before.get(name, 0.0))


def test_paddler_gauges_keep_their_exact_names(cluster: Cluster) -> None:
    """The three cluster gauges are there, typed gauge, with Paddler's names and live values."""
    cluster.wait_idle()
    samples = scrape(cluster)
    for name in PADDLER_GAUGES:
        assert samples["_families"][name] == "gauge", name
    assert samples["paddler_slots_total"] == 2
    assert samples["paddler_slots_processing"] == 0
    assert samples["paddler_requests_buffered"] == 0
    agent_labels = [k for k in samples if k.startswith("paddler_agent_slots_total{")]
    assert len(agent_labels) == 1 and "agent_name=meter" in agent_labels[0]
    assert samples[agent_labels[0]] == 2


def test_histograms_and_counters_count_the_requests_made(cluster: Cluster) -> None:
    """N finished requests: N more ok outcomes, N time-to-first-token and buffer-wait
    observations, one inter-token observation per token after the first, and token counters
    that add up to the requests' own usage."""
    cluster.wait_idle()
    before = scrape(cluster)
    prompts = ["Say hello.", "Name a colour.", "Count to three.", "What is two plus two?"]
    usages: list[dict[str, int]] = []
    streamed: list[int] = []
    for prompt in prompts:
        response = cluster.http.post(
            f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
            json=conversation(prompt, max_tokens=12),
        )
        lines = ndjson(response)
        assert is_done(lines[-1]), lines
        usages.append(lines[-1]["Response"]["response"]["GeneratedToken"]["Done"]["usage"])
        streamed.append(len(lines) - 1)
    after = scrape(cluster)

    n = len(prompts)
    assert delta(after, before, "paddler_requests_total{outcome=ok}") == n
    for outcome in ("503", "504", "502", "cancelled"):
        assert f"paddler_requests_total{{outcome={outcome}}}" in after
    assert delta(after, before, "paddler_time_to_first_token_seconds_count") == n
    assert delta(after, before, "paddler_buffer_wait_seconds_count") >= n
    assert delta(after, before, "paddler_inter_token_latency_seconds_count") == sum(
        count - 1 for count in streamed
    )
    assert delta(after, before, "paddler_prompt_tokens_total") == sum(
        u["prompt_tokens"] for u in usages
    )
    assert delta(after, before, "paddler_cached_prompt_tokens_total") == sum(
        u["cached_prompt_tokens"] for u in usages
    )
    generated = sum(
        u["content_tokens"]
        + u["reasoning_tokens"]
        + u["tool_call_tokens"]
        + u["undeterminable_tokens"]
        for u in usages
    )
    assert delta(after, before, "paddler_generated_tokens_total") == generated
    tokens_per_second = [v for k, v in after.items() if k.startswith("paddler_agent_tokens_per")]
    assert len(tokens_per_second) == 1 and tokens_per_second[0] > 0, tokens_per_second
    assert after["_families"]["paddler_time_to_first_token_seconds"] == "histogram"
    assert (
        after["paddler_time_to_first_token_seconds_bucket{le=+Inf}"]
        == after["paddler_time_to_first_token_seconds_count"]
    )


def holder(request_id: str) -> str:
    params = {"raw_prompt": "Go:", "max_tokens": 100000, "grammar": NEVER_ENDING}
    return json.dumps({"Request": {"id": request_id, "request": {"ContinueFromRawPrompt": params}}})


@pytest.mark.anyio
async def test_refused_and_cancelled_requests_are_counted_by_outcome(
    cluster: Cluster, statsd: StatsdListener
) -> None:
    """Both slots held: a third request is refused (503, no buffering), the gauges and the
    StatsD push show 2 of 2 slots processing, and closing the holders' socket counts two
    cancelled requests."""
    cluster.wait_idle()
    before = scrape(cluster)
    async with connect(cluster.inference_socket_url) as sock:
        for index in range(2):
            await sock.send(holder(f"hold-{index}"))
        started: set[str] = set()
        with anyio.fail_after(60):
            while len(started) < 2:
                message = json.loads(await sock.recv())
                assert "Response" in message, message
                started.add(message["Response"]["request_id"])
        async with httpx.AsyncClient(timeout=30.0) as client:
            response = await client.post(
                f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
                json=conversation(),
            )
        refused = ndjson(response) if response.status_code == 200 else []
        assert response.status_code == 503 or refused[-1]["Error"]["error"]["code"] == 503
        busy = scrape(cluster)
        assert busy["paddler_slots_processing"] == 2
        await anyio.to_thread.run_sync(
            lambda: statsd.wait_for({"paddler_.slots_processing": "2", "paddler_.slots_total": "2"})
        )
    cluster.wait_idle()
    after = scrape(cluster)
    assert delta(after, before, "paddler_requests_total{outcome=503}") == 1
    assert delta(after, before, "paddler_requests_total{outcome=cancelled}") == 2
    assert delta(after, before, "paddler_requests_total{outcome=ok}") == 0


def test_statsd_pushes_the_three_gauges_with_the_prefix(
    cluster: Cluster, statsd: StatsdListener
) -> None:
    """Datagrams with the three gauges arrive at the test's UDP socket, with live values."""
    cluster.wait_idle()
    seen = statsd.wait_for(
        {
            "paddler_.slots_processing": "0",
            "paddler_.slots_total": "2",
            "paddler_.requests_buffered": "0",
        }
    )
    assert set(seen) == set(STATSD_GAUGES)


def test_buffer_timeout_is_counted_and_its_wait_observed(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> None:
    """With no agent, a request waits out the buffer timeout: outcome 504 is counted and the
    wait is observed in the buffer-wait histogram (docs/metrics.md: "for a slot or by
    timeout")."""
    lonely = Cluster(tmp_path_factory.mktemp("timeout"), model_path, buffered_request_timeout=300)
    try:
        lonely.start_balancer()
        before = scrape(lonely)
        response = lonely.http.post(
            f"{lonely.inference_url}/api/v1/continue_from_conversation_history",
            json=conversation(),
        )
        lines = ndjson(response) if response.status_code == 200 else []
        assert response.status_code == 504 or lines[-1]["Error"]["error"]["code"] == 504
        after = scrape(lonely)
        assert delta(after, before, "paddler_requests_total{outcome=504}") == 1
        assert delta(after, before, "paddler_buffer_wait_seconds_count") == 1
        # The wait observed is the 0.3 s timeout, give or take the microseconds between the
        # balancer's deadline and its stopwatch (0.29986 was seen once).
        assert delta(after, before, "paddler_buffer_wait_seconds_sum") >= 0.25
        assert delta(after, before, "paddler_time_to_first_token_seconds_count") == 0
    finally:
        lonely.stop()


def test_custom_prefix_names_statsd_and_prometheus(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> None:
    """``--statsd-prefix`` renames the StatsD gauges and the ``/metrics`` names alike."""
    listener = StatsdListener()
    custom = Cluster(
        tmp_path_factory.mktemp("prefix"),
        model_path,
        statsd_addr=f"127.0.0.1:{listener.port}",
        statsd_prefix="lab_",
        statsd_reporting_interval=200,
    )
    try:
        custom.start_balancer()
        seen = listener.wait_for(
            {"lab_.slots_processing": "0", "lab_.slots_total": "0", "lab_.requests_buffered": "0"}
        )
        assert set(seen) == {"lab_.slots_processing", "lab_.slots_total", "lab_.requests_buffered"}
        samples = scrape(custom)
        for name in ("lab_slots_processing", "lab_slots_total", "lab_requests_buffered"):
            assert samples["_families"][name] == "gauge"
        assert not [name for name in samples if name.startswith("paddler_")]
    finally:
        custom.stop()
        listener.close()
