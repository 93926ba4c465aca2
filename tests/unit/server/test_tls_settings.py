"""TLS and access-control flag values: what is accepted, and the usage errors for the rest."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import trustme
from click.testing import CliRunner

from paddler_server._security_options import (
    balancer_security_settings,
    management_client_url,
    split_tokens,
)
from paddler_server._tls import TlsFiles, agent_management_url, client_ssl_context
from paddler_server.cli import cli


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("10.0.0.1:8060", "ws://10.0.0.1:8060"),
        ("wss://balancer.internal:8060/", "wss://balancer.internal:8060"),
        ("https://balancer.internal:8060", "wss://balancer.internal:8060"),
        ("HTTP://[::1]:8060", "ws://[::1]:8060"),
    ],
)
def test_agent_management_addresses(given: str, url: str) -> None:
    """host:port means ws://; https:// means wss://."""
    assert agent_management_url(given) == url


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("ftp://x:1", "scheme"),
        ("wss://x:1/api", "path"),
        ("wss://x", "host:port"),
        ("x:99999", "host:port"),
    ],
)
def test_bad_agent_management_addresses_say_why(given: str, complaint: str) -> None:
    """A wrong scheme, a path or a missing or bad port is named."""
    with pytest.raises(ValueError, match=complaint):
        agent_management_url(given)


def test_certificate_files_are_checked_together(tmp_path: Path) -> None:
    """A key that is not the certificate's is refused, naming both flags."""
    ca = trustme.CA()
    first, second = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    cert, key, other_key = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "other.pem"
    cert.write_bytes(first.cert_chain_pems[0].bytes())
    key.write_bytes(first.private_key_pem.bytes())
    other_key.write_bytes(second.private_key_pem.bytes())
    assert TlsFiles.load(cert, key) == TlsFiles(cert, key)
    with pytest.raises(ValueError, match=r"--tls-cert .* and --tls-key"):
        TlsFiles.load(cert, other_key)
    with pytest.raises(ValueError, match="no such file"):
        TlsFiles.load(tmp_path / "missing.pem", key)
    with pytest.raises(ValueError, match="--tls-ca"):
        client_ssl_context(key)  # a private key is no CA certificate


def test_security_flags_become_settings() -> None:
    """Tokens split on commas (PADDLER_AGENT_TOKENS); --tls-cert needs --tls-key."""
    assert split_tokens(["a,b", " c ", "a"]) == ("a", "b", "c")
    fields = balancer_security_settings(
        management_api_key=" k ",
        agent_tokens=("t1,t2",),
        tls_cert=None,
        tls_key=None,
        allowed_hosts=("gpu.lan",),
    )
    assert fields == {
        "management_api_key": "k",
        "agent_tokens": ("t1", "t2"),
        "tls": None,
        "allowed_hosts": ("gpu.lan",),
    }
    with pytest.raises(click.UsageError, match="go together"):
        balancer_security_settings(
            management_api_key=None,
            agent_tokens=(),
            tls_cert=Path("cert.pem"),
            tls_key=None,
            allowed_hosts=(),
        )


def test_set_state_addresses() -> None:
    """host:port is http://; https:// is kept; other schemes are a usage error."""
    assert management_client_url("127.0.0.1:8060") == "http://127.0.0.1:8060"
    assert management_client_url("https://b.internal:8060/") == "https://b.internal:8060"
    with pytest.raises(click.BadParameter):
        management_client_url("wss://b.internal:8060")


def test_an_open_management_service_on_the_network_is_warned_about() -> None:
    """On 0.0.0.0 without a key and a token, the balancer says what is open; on loopback,
    or closed, it says nothing."""
    from paddler_server._options import parse_address
    from paddler_server._security_options import warn_open_services
    from paddler_server._settings import BalancerSettings

    exposed = parse_address("0.0.0.0:8060")
    warnings = warn_open_services(BalancerSettings(management_addr=exposed))
    assert len(warnings) == 2
    assert "--management-api-key" in warnings[0] and "--agent-token" in warnings[1]
    closed = BalancerSettings(management_addr=exposed, management_api_key="k", agent_tokens=("t",))
    assert warn_open_services(closed) == []
    assert warn_open_services(BalancerSettings()) == []


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["balancer", "--agent-token", " "], "--agent-token"),
        (["balancer", "--agent-token", ","], "--agent-token"),
        (["agent", "--management-addr", "127.0.0.1:1", "--slots", "1", "--token", ""], "--token"),
    ],
)
def test_an_empty_join_token_is_a_usage_error(args: list[str], flag: str) -> None:
    """An empty token (a blank PADDLER_AGENT_TOKENS, say) must not leave the socket open."""
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert flag in result.output and "must not be empty" in result.output
