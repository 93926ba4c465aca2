"""The keys file and ``--api-key`` values: what is accepted, and errors that say where."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from paddler_server._api_keys import (
    ApiKeyStore,
    KeysFileError,
    flag_key_name,
    keys_from_flags,
    load_keys_file,
)
from paddler_server._key_limits import KeyLimits


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return path


def test_full_entry_and_sha256_entry(tmp_path: Path) -> None:
    """Every field is read; key_sha256 matches the key it is the digest of."""
    digest = hashlib.sha256(b"bob-secret").hexdigest()
    path = write(
        tmp_path,
        f"""
[[keys]]
name = "alice"
key = "alice-secret"
requests_per_minute = 60
tokens_per_minute = 10000
max_concurrent_requests = 2
priority = 10
models = ["chat", "code"]

[[keys]]
name = "bob"
key_sha256 = "{digest.upper()}"
""",
    )
    alice, bob = load_keys_file(path)
    assert alice.name == "alice"
    assert alice.limits == KeyLimits(
        requests_per_minute=60, tokens_per_minute=10000, max_concurrent_requests=2
    )
    assert alice.priority == 10
    assert alice.models == ("chat", "code")
    assert bob.limits == KeyLimits() and bob.priority == 0 and bob.models is None
    store = ApiKeyStore([alice, bob])
    assert store.authenticate("bob-secret") is not None
    assert store.authenticate("bob-secret").name == "bob"  # type: ignore[union-attr]
    assert store.authenticate("alice-secret").name == "alice"  # type: ignore[union-attr]
    assert store.authenticate("nobody") is None
    assert store.authenticate(None) is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('name = "a"\nkey = "k"\nrequests_per_minute = 0', "entry 1 ('a'): requests_per_minute"),
        ('name = "a"\nkey = "k"\ntokens_per_minute = "many"', "entry 1 ('a'): tokens_per_minute"),
        ('name = "a"\nkey = "k"\nmax_concurrent_requests = true', "max_concurrent_requests"),
        ('name = "a"\nkey = "k"\npriority = 1.5', "entry 1 ('a'): priority: must be an integer"),
        ('name = "a"\nkey = "k"\nmodels = "chat"', "models: must be a list"),
        ('name = "a"\nkey = "k"\nmodels = ["gpt 4"]', "models: invalid pool name 'gpt 4'"),
        ('name = "a"\nkey = "k"\nkey_sha256 = "00"', "key: give either key or key_sha256"),
        ('name = "a"\nkey_sha256 = "abc"', "key_sha256: must be 64 hex digits"),
        ('name = "a"', "entry 1 ('a'): key: required"),
        ('key = "k"', "entry 1: name: required"),
        ('name = "a"\nkey = "k"\nlimit = 3', "entry 1 ('a'): limit: unknown field"),
        ('name = "a"\nkey = ""', "key: must be a non-empty string"),
    ],
)
def test_bad_entry_names_file_entry_and_field(tmp_path: Path, entry: str, expected: str) -> None:
    """A bad entry is refused with the file, the entry and the field in the message."""
    path = write(tmp_path, f"[[keys]]\n{entry}\n")
    with pytest.raises(KeysFileError) as info:
        load_keys_file(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_duplicates_are_refused(tmp_path: Path) -> None:
    """Two entries with one name, or with one key, are refused naming the later entry."""
    same_name = write(tmp_path, '[[keys]]\nname="a"\nkey="1"\n[[keys]]\nname="a"\nkey="2"\n')
    with pytest.raises(KeysFileError, match=r"entry 2 \('a'\): name: 'a' is used"):
        load_keys_file(same_name)
    same_key = write(tmp_path, '[[keys]]\nname="a"\nkey="1"\n[[keys]]\nname="b"\nkey="1"\n')
    with pytest.raises(KeysFileError, match=r"entry 2 \('b'\): key: the same key as entry 'a'"):
        load_keys_file(same_key)


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    """A missing file and a TOML syntax error both name the file."""
    with pytest.raises(KeysFileError, match="cannot read the API keys file"):
        load_keys_file(tmp_path / "absent.toml")
    with pytest.raises(KeysFileError, match="not valid TOML"):
        load_keys_file(write(tmp_path, "[[keys]\n"))
    with pytest.raises(KeysFileError, match="unknown top-level field 'key'"):
        load_keys_file(write(tmp_path, 'key = "x"\n'))


def test_flag_keys_have_stable_non_secret_names() -> None:
    """A --api-key's name is derived from its digest: the same every run, never the key."""
    (key,) = keys_from_flags(["s3cret-value", "s3cret-value"])
    assert key.name == flag_key_name("s3cret-value")
    assert key.name == "key-" + hashlib.sha256(b"s3cret-value").hexdigest()[:8]
    assert "s3cret" not in key.name and "s3cret" not in repr(key)
    with pytest.raises(ValueError, match="may not be empty"):
        keys_from_flags([""])


def test_reload_keeps_state_of_kept_names(tmp_path: Path) -> None:
    """A reload that keeps a name keeps its tenant (counters, requests in flight) with the new
    settings; a removed key stops working at once."""
    first = load_keys_file(write(tmp_path, '[[keys]]\nname="a"\nkey="1"\npriority=1\n'))
    store = ApiKeyStore(first)
    tenant = store.authenticate("1")
    assert tenant is not None
    tenant.limiter.admit()
    second = load_keys_file(
        write(tmp_path, '[[keys]]\nname="a"\nkey="2"\npriority=5\nmax_concurrent_requests=1\n')
    )
    store.replace(second)
    assert store.authenticate("1") is None
    again = store.authenticate("2")
    assert again is tenant
    assert again.priority == 5
    assert again.limiter.in_flight == 1
    store.replace([])
    assert not store


def test_flag_and_file_keys_together(tmp_path: Path) -> None:
    """--api-key values and the file's keys are accepted together; the same key in both is
    the file's entry (its name and limits); a file name that is a --api-key's is refused."""
    from paddler_server._keys_reload import KeysSource, env_api_keys

    assert env_api_keys(" a, b ,,c ") == ("a", "b", "c")
    assert env_api_keys(None) == ()
    path = write(tmp_path, '[[keys]]\nname = "file"\nkey = "shared"\npriority = 3\n')
    keys = KeysSource(flag_keys=("shared", "flag-only"), file=path).load()
    assert sorted((key.name, key.priority) for key in keys) == [
        ("file", 3),
        (flag_key_name("flag-only"), 0),
    ]
    clash = write(tmp_path, f'[[keys]]\nname = "{flag_key_name("x")}"\nkey = "y"\n')
    with pytest.raises(KeysFileError, match="is a --api-key's"):
        KeysSource(flag_keys=("x",), file=clash).load()
