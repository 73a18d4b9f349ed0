"""Sticky variant assignment: stable across processes, close to the configured split, minimal movement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.reporting.stats import srm_check
from service.serving.experiments import assign_variant

REPO = Path(__file__).resolve().parents[3]
SPLIT = [("control", 10.0), ("explore", 5.0), ("linucb", 85.0)]
USERS = [f"user-{i}" for i in range(100_000)]


def _assign_all(salt: str, variants: list[tuple[str, float]], users: list[str]) -> list[str]:
    return [assign_variant(salt, u, variants) for u in users]


@pytest.fixture(scope="module")
def baseline() -> list[str]:
    return _assign_all("title-1", SPLIT, USERS)


def test_golden_assignments() -> None:
    # Locked: a change here reassigns every running experiment's viewers.
    got = [assign_variant("title-1", f"user-{i}", SPLIT) for i in range(24)]
    assert got == GOLDEN


GOLDEN = (
    ["linucb"] * 6 + ["explore"] + ["linucb"] * 6 + ["explore"] + ["linucb"] * 3 + ["control"]
    + ["linucb"] * 3 + ["control", "linucb", "linucb"]
)


def test_stable_across_processes() -> None:
    """Another interpreter with a different hash seed assigns every viewer identically."""
    users = USERS[:2000]
    script = (
        "import json, sys\n"
        "from service.serving.experiments import assign_variant\n"
        "split, users = json.load(sys.stdin)\n"
        "print(json.dumps([assign_variant('title-1', u, [tuple(v) for v in split]) for u in users]))\n"
    )
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-c", script], input=json.dumps([SPLIT, users]), capture_output=True, text=True,
            cwd=REPO, env=env, check=True, timeout=60,
        )
        assert json.loads(done.stdout) == _assign_all("title-1", SPLIT, users)


def test_split_is_close_to_the_weights(baseline: list[str]) -> None:
    counts = {name: baseline.count(name) for name, _ in SPLIT}
    # Binomial sd of the 10% variant over 100k viewers: sqrt(1e5 * 0.1 * 0.9) = 95; allow 4 sd per variant.
    for name, weight in SPLIT:
        expected = len(USERS) * weight / 100
        sd = (len(USERS) * weight / 100 * (1 - weight / 100)) ** 0.5
        assert abs(counts[name] - expected) < 4 * sd, (name, counts[name], expected)
    # and the dashboard's own SRM check does not fire on it (even at a lax alpha)
    assert srm_check(counts, dict(SPLIT), alpha=0.01)["flagged"] is False


def test_changing_one_weight_moves_only_viewers_of_that_variant(baseline: list[str]) -> None:
    # linucb 85 -> 80: its share drops from 85% to 80/95 = 84.21%, so 0.79% of viewers must move,
    # all of them out of linucb; nobody moves between control and explore.
    after = _assign_all("title-1", [("control", 10.0), ("explore", 5.0), ("linucb", 80.0)], USERS)
    moved = [(b, a) for b, a in zip(baseline, after, strict=True) if b != a]
    assert all(b == "linucb" for b, _ in moved)
    minimum = 0.85 - 80 / 95
    assert abs(len(moved) / len(USERS) - minimum) < 0.002  # sd of the moved fraction is about 0.0003


def test_raising_one_weight_only_moves_viewers_into_it(baseline: list[str]) -> None:
    # explore 5 -> 10: share 5% -> 10/105 = 9.52%, so 4.52% of viewers move, all into explore.
    after = _assign_all("title-1", [("control", 10.0), ("explore", 10.0), ("linucb", 85.0)], USERS)
    moved = [(b, a) for b, a in zip(baseline, after, strict=True) if b != a]
    assert all(a == "explore" for _, a in moved)
    assert abs(len(moved) / len(USERS) - (10 / 105 - 0.05)) < 0.003


def test_adding_a_variant_only_takes_viewers_into_it(baseline: list[str]) -> None:
    users = USERS[:20_000]
    after = _assign_all("title-1", [*SPLIT, ("vw", 5.0)], users)
    assert all(a == "vw" for b, a in zip(baseline, after, strict=False) if b != a)


def test_order_of_variants_does_not_matter(baseline: list[str]) -> None:
    users = USERS[:5000]
    assert _assign_all("title-1", list(reversed(SPLIT)), users) == baseline[:5000]


def test_salts_are_independent(baseline: list[str]) -> None:
    # Independent 10/5/85 draws agree with probability 0.1² + 0.05² + 0.85² = 0.735.
    other = _assign_all("title-2", SPLIT, USERS[:20_000])
    agree = sum(a == b for a, b in zip(baseline, other, strict=False)) / len(other)
    assert abs(agree - 0.735) < 0.015


@pytest.mark.parametrize(
    ("variants", "fragment"),
    [
        ([], "at least one variant"),
        ([("a", 1.0), ("b", 0.0)], "variant 'b': weight must be > 0, got 0.0"),
        ([("a", -1.0)], "variant 'a': weight must be > 0"),
        ([("a", float("nan"))], "weight must be > 0, got nan"),
    ],
)
def test_invalid_variants(variants: list[tuple[str, float]], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        assign_variant("salt", "user", variants)
