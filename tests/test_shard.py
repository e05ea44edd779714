"""--shard INDEX/COUNT: every target in exactly one shard, stable when targets are added."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prober.daemon.shard import Shard, select, shard_of
from prober.errors import UsageError
from tests.conftest import cdnprobe

names = st.lists(st.from_regex(r"[a-z0-9_.-]{1,20}", fullmatch=True), unique=True, max_size=60)


@given(names, st.integers(1, 12))
def test_every_target_lands_in_exactly_one_shard(targets: list[str], count: int) -> None:
    owners = [[i for i in range(count) if Shard(i, count).owns(t)] for t in targets]
    assert all(len(o) == 1 for o in owners)
    split = [select(targets, targets, Shard(i, count)) for i in range(count)]
    assert sorted(t for part in split for t in part) == sorted(targets)


@given(names, names, st.integers(1, 12))
def test_adding_targets_moves_none_of_the_old_ones(
    old: list[str], new: list[str], count: int
) -> None:
    before = {t: shard_of(t, count) for t in old}
    after = {t: shard_of(t, count) for t in old + [n for n in new if n not in old]}
    assert all(after[t] == shard for t, shard in before.items())


def test_shard_is_pinned_across_releases() -> None:
    """sha256(name), first 8 bytes big-endian, mod COUNT: replicas of different releases agree."""
    names = ("repo", "debian", "golang-dl", "a", "b", "c")
    assert [shard_of(n, 3) for n in names] == [1, 0, 1, 1, 1, 2]
    assert [shard_of(n, 7) for n in names] == [2, 1, 5, 4, 0, 3]


def test_split_is_not_degenerate() -> None:
    sizes = [
        len(select(list(range(300)), [f"t{i}" for i in range(300)], Shard(i, 3))) for i in range(3)
    ]
    assert min(sizes) > 60


@pytest.mark.parametrize("text", ["3", "1/0", "3/3", "a/b", "-1/2", "1/2/3"])
def test_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        Shard.parse(text)


def test_bad_shard_on_the_command_line_exits_2(tmp_path: object) -> None:
    proc = cdnprobe("run", "--config", "config/example.yaml", "--shard", "5/3")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "cdnprobe: bad --shard '5/3': need 0 <= INDEX < COUNT <= 1000"
