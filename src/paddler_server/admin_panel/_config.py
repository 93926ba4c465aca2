"""What the panel needs to know about the balancer it belongs to."""

from __future__ import annotations

from attrs import frozen


@frozen
class AdminPanelConfig:
    """The balancer's settings as the operator typed them on the command line.

    Addresses are the original CLI strings (``host:port``), so the panel shows exactly what
    was configured and the browser resolves the names itself.
    """

    management_addr: str
    inference_addr: str
    compat_openai_addr: str | None = None
    buffered_request_timeout_ms: int = 10_000
    max_buffered_requests: int = 30
    statsd_addr: str | None = None
    statsd_prefix: str = "paddler_"
    statsd_reporting_interval_ms: int = 10_000
