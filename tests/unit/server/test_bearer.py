"""Bearer credentials: parsing the header and matching keys by digest."""

from __future__ import annotations

from paddler_server._bearer import SecretSet, bearer_token, digest


def test_bearer_token_reads_the_credential() -> None:
    """The scheme is case-insensitive; other schemes and empty tokens give nothing."""
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_secret_set_matches_only_its_secrets() -> None:
    """A known secret matches (and says which digest); a near miss does not."""
    secrets = SecretSet(["one", "two"])
    assert secrets.match("two") == digest("two")
    assert secrets.match("tw") is None
    assert secrets.match(None) is None
    assert "one" in secrets and "three" not in secrets


def test_secret_set_accepts_digests_and_hides_secrets() -> None:
    """A key given as its SHA-256 matches; the repr never shows a secret."""
    secrets = SecretSet(digests=[digest("k")])
    assert secrets.match("k") is not None
    assert "hidden-key" not in repr(SecretSet(["hidden-key"]))
    assert not SecretSet()
