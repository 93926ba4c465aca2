"""``--model-alias ALIAS=POOL``: what is accepted, and usage errors that name the flag."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from paddler_server._pool_routing import parse_model_aliases
from paddler_server.cli import cli


def test_aliases_map_names_to_pools_in_flag_order() -> None:
    aliases = parse_model_aliases(["gpt-4o-mini=chat", "text-embedding-3-small=embed", "4o=chat"])
    assert aliases == {"gpt-4o-mini": "chat", "text-embedding-3-small": "embed", "4o": "chat"}
    assert list(aliases) == ["gpt-4o-mini", "text-embedding-3-small", "4o"]


def test_repeating_the_same_alias_is_harmless() -> None:
    assert parse_model_aliases(["a=chat", "a=chat"]) == {"a": "chat"}


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (["chat"], "is not ALIAS=POOL"),
        (["=chat"], "is not ALIAS=POOL"),
        (["gpt="], "is not ALIAS=POOL"),
        (["gpt 4=chat"], "gpt 4"),
        (["gpt=my pool"], "my pool"),
        (["default=chat"], "'default' is a pool's name"),
        (["chat=chat"], "must differ"),
        (["a=chat", "a=embed"], "already an alias of 'chat'"),
        (["a=b", "b=chat"], "'b' is itself an alias"),
    ],
)
def test_bad_aliases_say_what_is_wrong(values: list[str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_model_aliases(values)


def test_the_balancer_refuses_a_bad_alias_naming_the_flag() -> None:
    """A usage error (exit 2) before anything starts, naming ``--model-alias`` and the value."""
    result = CliRunner().invoke(cli, ["balancer", "--model-alias", "gpt-4o"])
    assert result.exit_code == 2, result.output
    assert "--model-alias" in result.output
    assert "'gpt-4o' is not ALIAS=POOL" in result.output
