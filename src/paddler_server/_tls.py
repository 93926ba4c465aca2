"""TLS: the balancer's certificate (``--tls-cert``/``--tls-key``) and the agent's trust.

The balancer serves every service (inference, management, OpenAI, admin panel) with the same
certificate through uvicorn's ``ssl_certfile``/``ssl_keyfile``. An agent dials ``wss://``
(given as ``wss://host:port`` or ``https://host:port``) and checks the certificate against the
system's CAs, or only against ``--tls-ca`` for a private CA.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import attrs

__all__ = ["TlsFiles", "agent_management_url", "client_ssl_context"]


@attrs.frozen
class TlsFiles:
    """A PEM certificate chain and its private key, checked to load together."""

    cert: Path
    key: Path

    @classmethod
    def load(cls, cert: str | Path, key: str | Path) -> TlsFiles:
        """Check that ``cert`` and ``key`` load as a pair; ``ValueError`` says what is wrong."""
        files = cls(Path(cert), Path(key))
        for flag, path in (("--tls-cert", files.cert), ("--tls-key", files.key)):
            if not path.is_file():
                raise ValueError(f"{flag} {path}: no such file")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                files.cert, files.key
            )
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"--tls-cert {files.cert} and --tls-key {files.key} do not load as a PEM "
                f"certificate and its key: {exc}"
            ) from exc
        return files


def client_ssl_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """Certificate checks for an agent: the system's CAs, or only ``ca_file`` when given."""
    if ca_file is None:
        return ssl.create_default_context()
    path = Path(ca_file)
    if not path.is_file():
        raise ValueError(f"--tls-ca {path}: no such file")
    try:
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"--tls-ca {path} is not a PEM CA certificate: {exc}") from exc


_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def agent_management_url(text: str) -> str:
    """An agent's ``--management-addr`` as a WebSocket base URL.

    ``host:port`` means ``ws://host:port``; ``ws://``, ``wss://``, ``http://`` and
    ``https://`` (the last two meaning ``ws``/``wss``) are taken with their scheme. Raises
    ``ValueError`` for other schemes, a path, or a missing port.
    """
    value = text.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "ws", value
    elif scheme.lower() not in _SCHEMES:
        raise ValueError(f"{text!r}: the scheme must be ws, wss, http or https")
    rest = rest.rstrip("/")
    if "/" in rest:
        raise ValueError(f"{text!r} has a path; give the balancer's host:port only")
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{text!r} is not [scheme://]host:port, e.g. wss://10.0.0.1:8060")
    return f"{_SCHEMES[scheme.lower()]}://{rest}"
