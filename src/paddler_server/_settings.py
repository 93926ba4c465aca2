"""``BalancerSettings``: every setting of ``paddler balancer``, in one frozen record.

The CLI builds it once from the flags; the runner, the four apps and the admin panel read it.
Nothing copies it field by field into another record: the library's own part is a
``paddler.balancer.BalancerConfig`` kept whole in :attr:`BalancerSettings.balancer`, and the
resource limits are a ``ServerLimits`` kept whole in :attr:`BalancerSettings.limits`.

To add a setting: add a field with its default here, a click option in ``cli.balancer`` that
passes it to ``BalancerSettings(...)``, and read ``settings.<field>`` where it is needed (every
app factory receives the settings; handlers can ask for ``settings: SettingsDep``). Document
the flag in ``docs/cli.md``.
"""

from __future__ import annotations

import attrs
from litestar.di import NamedDependency

from paddler.balancer import BalancerConfig
from paddler_server._keys_reload import KeysSource
from paddler_server._limits import ServerLimits
from paddler_server._options import Address, parse_address
from paddler_server._origins import panel_origins
from paddler_server._tls import TlsFiles

__all__ = ["BalancerSettings", "SettingsDep"]


@attrs.frozen(kw_only=True)
class BalancerSettings:
    """What ``paddler balancer`` was started with; the defaults are the flags' defaults.

    Addresses keep what the operator typed (``Address.original``): the admin panel shows it
    as given and the browser resolves the names itself.
    """

    inference_addr: Address = attrs.field(factory=lambda: parse_address("127.0.0.1:8061"))
    management_addr: Address = attrs.field(factory=lambda: parse_address("127.0.0.1:8060"))
    #: The OpenAI-compatible API; off when ``None``.
    compat_openai_addr: Address | None = None
    #: The web admin panel; off when ``None``. Its origin is allowed by both CORS lists.
    web_admin_panel_addr: Address | None = None
    #: The model id ``/v1/models`` lists (``None``: the GGUF file's stem).
    served_model_name: str | None = None
    #: ``--model-alias ALIAS=POOL``: more OpenAI ``model`` names for a pool, in flag order.
    model_aliases: tuple[tuple[str, str], ...] = ()
    #: Buffering and timeouts, the library's record (seconds).
    balancer: BalancerConfig = attrs.field(factory=BalancerConfig)
    inference_cors: tuple[str, ...] = ()
    management_cors: tuple[str, ...] = ()
    #: ``--balancing-policy``: a name some ``paddler_balancing_policies`` hook offers.
    balancing_policy: str = "least_busy"
    #: Where the desired state lives; any URL a ``paddler_state_store_for_url`` hook accepts.
    state_database: str = "memory://"
    statsd_addr: Address | None = None
    statsd_prefix: str = "paddler_"
    statsd_reporting_interval_ms: int = 10_000
    limits: ServerLimits = attrs.field(factory=ServerLimits)
    #: ``--api-key``/``PADDLER_API_KEYS`` and ``--api-keys-file``: the inference and OpenAI
    #: APIs need one of these keys; open when none is configured.
    api_keys: KeysSource = attrs.field(factory=KeysSource, repr=False)
    #: ``--management-api-key``: the management API (and so the panel) needs it; open when
    #: ``None``. Never in the repr.
    management_api_key: str | None = attrs.field(default=None, repr=False)
    #: ``--agent-token``: agents must present one of these to join; open when empty.
    agent_tokens: tuple[str, ...] = attrs.field(default=(), repr=False)
    #: ``--tls-cert``/``--tls-key``: every service speaks only TLS with this certificate.
    tls: TlsFiles | None = None
    #: ``--allowed-hosts``: ``Host`` names answered besides loopback ones (``_host_check``).
    allowed_hosts: tuple[str, ...] = ()

    def _panel_origin(self) -> tuple[str, ...]:
        return panel_origins(
            self.web_admin_panel_addr, tls=self.tls is not None, allowed_hosts=self.allowed_hosts
        )

    @property
    def inference_origins(self) -> tuple[str, ...]:
        """Browser origins allowed by the inference and OpenAI services (the panel's too)."""
        return (*self.inference_cors, *self._panel_origin())

    @property
    def management_origins(self) -> tuple[str, ...]:
        """Browser origins allowed by the management service (the panel's too)."""
        return (*self.management_cors, *self._panel_origin())


#: Injected into handlers by name (ours, not request data: Litestar does not validate it).
SettingsDep = NamedDependency[BalancerSettings]
