"""Linear Thompson sampling: the Monte Carlo probabilities, the logged propensity, randomness, parameters."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from policies import create_policy
from policies.linear_ts import LinearTS
from policies.state import unpack

FEATURES = ["romance", "comedy", "drama"]


def make(arms: list[str], seed: int = 9, **params: object) -> LinearTS:
    p = create_policy("linear_ts", arms=arms, features=FEATURES, seed=seed, **params)
    assert isinstance(p, LinearTS)
    return p


def trained(arms: list[str], **params: Any) -> LinearTS:
    p = make(arms, **params)
    rng = np.random.default_rng(1)
    x = rng.random((40, 3))
    k = np.arange(40) % len(arms)
    r = (rng.random(40) < 0.3 + 0.2 * k / len(arms)).astype(float)
    p.learn_batch(x, k, r, np.full(40, 1 / len(arms)))
    return p


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def test_two_arm_probabilities_match_the_normal_difference() -> None:
    v = 0.8
    p = trained(["a", "b"], v=v, n_samples=4000, floor=1e-9)
    s = unpack(p.to_bytes())[1]
    for row in np.random.default_rng(2).random((8, 3)):
        x = np.append(row, 1.0)
        mean = s["theta"] @ x
        var = v**2 * np.einsum("i,kij,j->k", x, s["A_inv"], x)
        want = normal_cdf((mean[0] - mean[1]) / math.sqrt(var.sum()))
        got = p.probabilities(dict(zip(FEATURES, row.tolist(), strict=True)))["a"]
        assert abs(got - want) < 4 * math.sqrt(want * (1 - want) / 4000) + 1e-3, (got, want)


def test_arms_are_drawn_with_the_logged_propensity() -> None:
    p = trained(["a", "b", "c"], n_samples=64)
    ctx = {"romance": 0.3, "comedy": 0.6}
    n = 6000
    decisions = [p.decide(ctx) for _ in range(n)]
    for arm in ["a", "b", "c"]:
        logged = np.mean([d.probabilities[arm] for d in decisions])
        freq = np.mean([d.arm == arm for d in decisions])
        assert abs(freq - logged) < 4 * math.sqrt(logged * (1 - logged) / n), (arm, freq, logged)
    assert all(d.propensity == d.probabilities[d.arm] for d in decisions)


def test_a_decision_consumes_n_samples_times_k_plus_one_normals() -> None:
    p = make(["a", "b", "c"], seed=4, n_samples=10)
    p.decide({"romance": 0.5})
    reference = np.random.default_rng(4)
    reference.standard_normal(31, dtype=np.float32)
    assert p._rng.random() == reference.random()


def test_more_posterior_scale_explores_more() -> None:
    probe = np.random.default_rng(3).random((200, 3))
    narrow = trained(["a", "b", "c"], v=0.05).decide_batch(probe).probabilities.max(axis=1).mean()
    wide = trained(["a", "b", "c"], v=2.0).decide_batch(probe).probabilities.max(axis=1).mean()
    assert narrow > wide + 0.2


BAD_PARAMS = [
    ({"v": 0.0}, r"v must be in \(0, inf\], got 0.0"),
    ({"v": -1.0}, r"v must be in \(0, inf\], got -1.0"),
    ({"n_samples": 0}, r"n_samples must be in \[1, 100000\], got 0"),
    ({"n_samples": 2.5}, "n_samples must be an integer, got 2.5"),
    ({"ridge": -1.0}, r"ridge must be in \(0, inf\], got -1.0"),
    ({"forgetting": 2.0}, r"forgetting must be in \(0, 1\], got 2.0"),
]


@pytest.mark.parametrize(("params", "fragment"), BAD_PARAMS)
def test_bad_parameters_name_the_field_and_bound(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make(["a", "b"], **params)
