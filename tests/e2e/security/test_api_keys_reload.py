"""``--api-keys-file`` against a running ``paddler balancer`` subprocess: startup errors,
reloads when the file changes and on SIGHUP, and a bad reload that keeps the old keys.

No agent is needed: a key that passes gets the inference API's own 400 for an empty body,
one that does not gets the key check's 401.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e_cluster import Cluster, wait_until

RELOAD_TIMEOUT = 20.0


def entry(name: str, key: str, **fields: object) -> str:
    lines = ["[[keys]]", f'name = "{name}"', f'key = "{key}"']
    lines += [f"{field} = {value}" for field, value in fields.items()]
    return "\n".join(lines) + "\n"


def replace_file(path: Path, text: str) -> None:
    """Write the way editors and config tools do: a new file renamed over the old one."""
    new = path.with_suffix(".new")
    new.write_text(text)
    os.replace(new, path)


def status(cluster: Cluster, key: str) -> int:
    response = httpx.post(
        f"{cluster.inference_url}/api/v1/continue_from_raw_prompt",
        headers={"authorization": f"Bearer {key}"},
        timeout=10.0,
    )
    return response.status_code


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(entry("alice", "key-aaaa"))
    return path


def test_a_bad_keys_file_stops_the_balancer_with_a_message(tmp_path: Path) -> None:
    """At startup a bad entry is a usage error naming the file, the entry and the field."""
    bad = tmp_path / "bad.toml"
    bad.write_text(entry("alice", "key-aaaa") + entry("bob", "key-bbbb", tokens_per_minute=-5))
    result = subprocess.run(
        [sys.executable, "-m", "paddler_server.cli", "balancer", "--api-keys-file", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{bad}: [[keys]] entry 2 ('bob'): tokens_per_minute: must be a positive integer" in (
        result.stderr
    )


def test_keys_reload_on_change_and_on_sighup_and_survive_a_bad_file(
    tmp_path: Path, model_path: Path, keys_file: Path
) -> None:
    """The file's new keys work without a restart, whether the file changes or SIGHUP comes;
    a broken file is logged and the keys in use stay."""
    cluster = Cluster(tmp_path, model_path, api_keys_file=keys_file)
    try:
        balancer = cluster.start_balancer()
        assert status(cluster, "key-aaaa") == 400  # accepted: the app's own 400
        assert status(cluster, "key-bbbb") == 401

        replace_file(keys_file, entry("alice", "key-aaaa") + entry("bob", "key-bbbb"))
        wait_until(lambda: status(cluster, "key-bbbb") == 400, RELOAD_TIMEOUT, "bob's key")
        assert "API keys reloaded reason=file changed keys=2" in balancer.log()

        # Same size, same inode, same modification time: only SIGHUP can show this change.
        before = os.stat(keys_file)
        keys_file.write_text(keys_file.read_text().replace("key-bbbb", "key-cccc"))
        os.utime(keys_file, ns=(before.st_atime_ns, before.st_mtime_ns))
        balancer.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: status(cluster, "key-cccc") == 400, RELOAD_TIMEOUT, "SIGHUP reload")
        assert status(cluster, "key-bbbb") == 401
        assert "API keys reloaded reason=SIGHUP keys=2" in balancer.log()

        replace_file(keys_file, entry("alice", "key-aaaa") + '[[keys]]\nname = "carol"\n')
        wait_until(
            lambda: "API keys not reloaded" in balancer.log(), RELOAD_TIMEOUT, "failed reload"
        )
        assert f"{keys_file}: [[keys]] entry 2 ('carol'): key: required" in balancer.log()
        assert status(cluster, "key-aaaa") == 400
        assert status(cluster, "key-cccc") == 400
        assert balancer.alive
        assert "key-aaaa" not in balancer.log()  # names are logged, keys never
    finally:
        cluster.stop()
