"""Key names: one module spells them, a title's keys share one cluster slot, impression ids parse safely."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.crc import key_slot

from service.store import keys

SERVICE = Path(__file__).resolve().parents[3] / "service"


def title_keys(title_id: str) -> list[str]:
    ref = keys.ImpressionRef(title_id, 29_000_000, "0123456789abcdef")
    return [
        keys.decisions_stream(title_id),
        keys.labelled_stream(title_id),
        keys.clicks_stream(title_id),
        keys.pending(title_id),
        keys.impression(ref),
        keys.join_counters(title_id),
        keys.totals(title_id),
        keys.minute_counters(title_id, ref.minute),
        keys.snapshot(title_id),
    ]


@pytest.mark.parametrize("title_id", ["t1", "stranger-things", "a.b_c-9"])
def test_keys_of_a_title_share_one_cluster_slot(title_id: str) -> None:
    slots = {key_slot(k.encode()) for k in title_keys(title_id)}
    assert len(slots) == 1
    assert all(f"{{{title_id}}}" in k for k in title_keys(title_id))


def test_keys_of_different_titles_are_distinct() -> None:
    assert not set(title_keys("t1")) & set(title_keys("t2"))


def test_new_impression_id_round_trips() -> None:
    decided_at = 1_700_000_123.5
    impression_id = keys.new_impression_id("stranger-things", decided_at)
    ref = keys.parse_impression_id(impression_id)
    assert ref is not None
    assert ref.title_id == "stranger-things"
    assert ref.minute == int(decided_at // 60)
    assert ref.impression_id == impression_id
    assert keys.new_impression_id("t", decided_at) != keys.new_impression_id("t", decided_at)


@pytest.mark.parametrize(
    "impression_id",
    [
        "",
        "t1",
        "t1~",
        "t1~123",
        "t1~123~0123456789abcde",  # token too short
        "t1~123~0123456789abcdefa",  # token too long
        "t1~123~0123456789ABCDEF",  # upper-case hex
        "t1~-5~0123456789abcdef",
        "t 1~123~0123456789abcdef",
        "-t1~123~0123456789abcdef",
        "{t1}~123~0123456789abcdef",
        "t1~123~0123456789abcdef\n",
        "x" * 200,
        None,
        123,
        b"t1~123~0123456789abcdef",
    ],
)
def test_malformed_impression_ids_parse_to_none(impression_id: object) -> None:
    assert keys.parse_impression_id(impression_id) is None


def test_only_keys_py_spells_key_names() -> None:
    """No other module or Lua script contains a key prefix (the style guide's one-owner rule)."""
    quoted_prefix = re.compile(r"""["']ab:""")
    offenders = [
        str(p.relative_to(SERVICE))
        for p in SERVICE.glob("**/*.py")
        if p.name != "keys.py" and quoted_prefix.search(p.read_text(encoding="utf-8"))
    ]
    offenders += [p.name for p in SERVICE.glob("store/lua/*.lua") if "ab:" in p.read_text(encoding="utf-8")]
    assert offenders == []
    assert sorted(p.name for p in SERVICE.glob("store/lua/*.lua"))  # the scripts are where we look


def test_new_impression_returns_the_parts_its_id_parses_to() -> None:
    for title, at in [("stranger-things", 1_764_316_800.5), ("t", 0.0), ("a.b_c-9", 59.999)]:
        impression_id, ref = keys.new_impression(title, at)
        assert keys.parse_impression_id(impression_id) == ref
        assert ref.title_id == title and ref.minute == keys.epoch_minute(at)
