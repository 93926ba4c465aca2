"""Prometheus metrics: Paddler's three gauges verbatim, histograms, counters, per-agent gauges."""

from __future__ import annotations

import pytest
from attrs import frozen
from prometheus_client.parser import text_string_to_metric_families

from paddler.metrics import REQUEST_OUTCOMES, BalancerMetrics
from paddler.wire import (
    AgentControllerPoolSnapshot,
    AgentControllerSnapshot,
    AgentStateApplicationStatus,
)


@frozen
class Statistics:
    slots_total: int = 8
    slots_busy: int = 3
    requests_buffered: int = 2


def agent(agent_id: str, name: str | None, *, total: int, busy: int) -> AgentControllerSnapshot:
    return AgentControllerSnapshot(
        id=agent_id,
        name=name,
        desired_slots_total=4,
        slots_total=total,
        slots_processing=busy,
        download_current=0,
        download_total=0,
        download_indeterminate=True,
        issues=(),
        state_application_status=AgentStateApplicationStatus.APPLIED,
        uses_chat_template_override=False,
    )


POOL = AgentControllerPoolSnapshot(
    agents=(agent("a1", "left", total=4, busy=1), agent("a2", None, total=4, busy=2))
)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_paddler_gauges_keep_their_names_help_and_order():
    """The first lines are Paddler's exactly, integers printed as integers, with the prefix."""
    text = BalancerMetrics(prefix="cluster_").render(Statistics(), POOL).decode()

    assert text.splitlines()[:9] == [
        "# HELP cluster_slots_processing Number of processing slots",
        "# TYPE cluster_slots_processing gauge",
        "cluster_slots_processing 3",
        "# HELP cluster_slots_total Number of total slots",
        "# TYPE cluster_slots_total gauge",
        "cluster_slots_total 8",
        "# HELP cluster_requests_buffered Number of buffered requests",
        "# TYPE cluster_requests_buffered gauge",
        "cluster_requests_buffered 2",
    ]


def test_gauges_print_whole_values_as_integers_and_escape_labels():
    """Per-agent gauges too: ``4``, not ``4.0``; a rate keeps its fraction; names are escaped."""
    pool = AgentControllerPoolSnapshot(agents=(agent("a1", 'we"ird\\', total=4, busy=1),))
    metrics = BalancerMetrics()
    for _ in range(5):
        metrics.record_generated_tokens("a1")
    lines = metrics.render(Statistics(), pool).decode().splitlines()

    labels = 'agent_id="a1",agent_name="we\\"ird\\\\"'
    assert f"paddler_agent_slots_total{{{labels}}} 4" in lines
    assert f"paddler_agent_tokens_per_second{{{labels}}} 0.5" in lines
    assert (
        samples(metrics.render(Statistics(), pool))[
            ("paddler_agent_slots_total", (("agent_id", "a1"), ("agent_name", 'we"ird\\')))
        ]
        == 4
    )


def test_histograms_count_observations():
    metrics = BalancerMetrics()
    for seconds in (0.002, 0.03, 0.4):
        metrics.observe_buffer_wait(seconds)
    metrics.observe_time_to_first_token(0.2)
    metrics.observe_time_to_first_token(1.5)
    for _ in range(10):
        metrics.observe_inter_token_latency(0.015)

    values = samples(metrics.render(Statistics(), POOL))

    assert values[("paddler_buffer_wait_seconds_count", ())] == 3
    assert values[("paddler_buffer_wait_seconds_bucket", (("le", "0.05"),))] == 2
    assert values[("paddler_buffer_wait_seconds_sum", ())] == pytest.approx(0.432)
    assert values[("paddler_time_to_first_token_seconds_count", ())] == 2
    assert values[("paddler_time_to_first_token_seconds_bucket", (("le", "1.0"),))] == 1
    assert values[("paddler_inter_token_latency_seconds_count", ())] == 10
    assert values[("paddler_inter_token_latency_seconds_bucket", (("le", "0.01"),))] == 0
    assert values[("paddler_inter_token_latency_seconds_bucket", (("le", "0.02"),))] == 10


def test_token_and_request_counters():
    metrics = BalancerMetrics()
    metrics.count_tokens(prompt=100, cached_prompt=60, generated=20)
    metrics.count_tokens(prompt=10, cached_prompt=0, generated=5)
    metrics.count_request("ok")
    metrics.count_request("ok")
    metrics.count_request("504")

    values = samples(metrics.render(Statistics(), POOL))

    assert values[("paddler_prompt_tokens_total", ())] == 110
    assert values[("paddler_cached_prompt_tokens_total", ())] == 60
    assert values[("paddler_generated_tokens_total", ())] == 25
    assert values[("paddler_requests_total", (("outcome", "ok"),))] == 2
    assert values[("paddler_requests_total", (("outcome", "504"),))] == 1
    for outcome in REQUEST_OUTCOMES:  # every outcome is present from the start, at zero
        assert ("paddler_requests_total", (("outcome", outcome),)) in values


def test_per_agent_gauges_follow_the_snapshot():
    metrics = BalancerMetrics()
    for _ in range(30):
        metrics.record_generated_tokens("a1")

    values = samples(metrics.render(Statistics(), POOL))
    a1 = (("agent_id", "a1"), ("agent_name", "left"))
    a2 = (("agent_id", "a2"), ("agent_name", ""))

    assert values[("paddler_agent_slots_total", a1)] == 4
    assert values[("paddler_agent_slots_processing", a2)] == 2
    assert values[("paddler_agent_desired_slots_total", a1)] == 4
    assert values[("paddler_agent_tokens_per_second", a1)] == 3.0  # 30 tokens over 10 s
    assert values[("paddler_agent_tokens_per_second", a2)] == 0.0

    gone = samples(metrics.render(Statistics(), AgentControllerPoolSnapshot(agents=())))
    assert not any(name == "paddler_agent_slots_total" for name, _ in gone)


def test_each_instance_has_its_own_registry():
    """Two balancers in one process do not share or clash on metrics."""
    first, second = BalancerMetrics(), BalancerMetrics()
    first.count_request("ok")

    assert (
        samples(second.render(Statistics()))[("paddler_requests_total", (("outcome", "ok"),))] == 0
    )
