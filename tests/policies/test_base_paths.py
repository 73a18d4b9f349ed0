"""The base class's single-call fast paths agree exactly with the batch paths, and the floor binds only
where needed."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from policies import InvalidContext, create_policy
from policies.base import (
    MAX_FEATURE_ABS,
    floored_greedy_row,
    greedy_split,
    greedy_split_row,
    pick,
    pick_batch,
)

FEATURES = ["romance", "comedy", "drama", "horror"]


def random_probabilities(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    p = rng.random((n, k)) ** 3
    p[rng.random((n, k)) < 0.3] = 0.0  # some exact zeros, as argmax policies produce
    p[:, 0] += 1e-3
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"romance": 0.7, "comedy": 0.2},
        {"romance": 0.1, "comedy": 0.2, "drama": 0.3, "horror": 0.4},  # every feature, in order
        {"horror": 0.4, "drama": 0.3, "comedy": 0.2, "romance": 0.1},
        {"romance": 0.1, "comedy": 0.2, "drama": float("nan"), "horror": 0.4},
        {"horror": 3, "drama": -1},
        {"romance": 1e300, "comedy": 1e300},  # finite, but beyond what scoring can use: both refuse
        MappingProxyType({"drama": 0.5}),
        {"comedy": np.float64(0.25)},
    ],
)
def test_fast_vectorize_equals_checked_vectorize(context: dict[str, float]) -> None:
    p = create_policy("uniform", arms=["a"], features=FEATURES)
    if any(v != v for v in context.values()):
        with pytest.raises(ValueError, match="feature 'drama' must be finite"):
            p.vectorize(context)
        return
    if any(abs(v) > MAX_FEATURE_ABS for v in context.values()):
        with pytest.raises(InvalidContext, match="feature 'romance' is 1e[+]300; policies score values"):
            p.vectorize(context)
        with pytest.raises(InvalidContext, match="feature 'romance' is 1e[+]300"):
            p._vectorize_checked(context)
        return
    x = p.vectorize(context)
    assert x.dtype == float and x.shape == (5,) and x[-1] == 1.0
    assert np.array_equal(x, p._vectorize_checked(context))


def test_pick_equals_pick_batch() -> None:
    rng = np.random.default_rng(0)
    p = random_probabilities(rng, 5000, 7)
    u = rng.random(5000)
    u[:5] = [0.0, 0.999999999, p[5, 0], 0.5, 1e-300]
    singles = [pick(row, ui) for row, ui in zip(p.tolist(), u.tolist(), strict=True)]
    assert pick_batch(p, u).tolist() == singles


def test_greedy_split_row_equals_greedy_split() -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=(2000, 5)), 1)  # rounding makes ties common
    want = greedy_split(scores)
    got = np.array([greedy_split_row(row) for row in scores.tolist()])
    assert np.array_equal(got, want)
    assert (want > 0).sum(axis=1).max() > 1


@pytest.mark.parametrize("floor", [0.001, 0.02, 0.1, 0.25])
def test_floored_greedy_row_equals_split_then_floor(floor: float) -> None:
    p = create_policy("uniform", arms=["a", "b", "c", "d", "e"], features=FEATURES, floor=floor)
    scores = np.round(np.random.default_rng(3).normal(size=(2000, 5)), 1)
    scores[:3] = 0.5  # all tied
    for row in scores.tolist():
        assert floored_greedy_row(row, p.floor) == p._floored_row(greedy_split_row(row))


@pytest.mark.parametrize("floor", [0.001, 0.02, 0.1, 0.25])
def test_floor_row_equals_floor_batch_and_binds_only_where_needed(floor: float) -> None:
    p = create_policy("uniform", arms=["a", "b", "c", "d"], features=FEATURES, floor=floor)
    probs = random_probabilities(np.random.default_rng(2), 3000, 4)
    batch = p._floored(probs)
    rows = np.array([p._floored_row(row) for row in probs.tolist()])
    assert np.array_equal(rows, batch)
    assert np.allclose(batch.sum(axis=1), 1.0, atol=1e-12)
    assert batch.min() >= floor - 1e-12
    untouched = probs.min(axis=1) >= floor
    assert np.array_equal(batch[untouched], probs[untouched])
    lifted = ~untouched
    assert np.allclose(batch[lifted].min(axis=1), floor, atol=1e-12)  # lifted just enough
    one_hot = np.eye(4)[[0, 2]]
    assert np.allclose(p._floored(one_hot), (1 - 4 * floor) * one_hot + floor, atol=1e-15)


def test_learn_reuses_decides_vector_only_for_an_unchanged_context() -> None:
    """decide then learn with the same dict reuses the validated vector; a dict changed in between is
    vectorized (and validated) again."""
    import pytest as _pytest

    from policies import create_policy as _create

    a = _create("linucb", arms=["x", "y"], features=["f", "g"], seed=3)
    b = _create("linucb", arms=["x", "y"], features=["f", "g"], seed=3)
    ctx = {"f": 0.5}
    d = a.decide(ctx)
    b.decide({"f": 0.5})
    ctx["g"] = 1.0  # mutated after deciding: learn must see g = 1.0
    a.learn(ctx, d.arm, 1.0, d.propensity)
    b.learn({"f": 0.5, "g": 1.0}, d.arm, 1.0, d.propensity)
    assert a.to_bytes() == b.to_bytes()
    d = a.decide(ctx)
    ctx["h"] = 2.0  # now invalid: the reuse must not skip validation
    with _pytest.raises(ValueError, match="unknown feature 'h'"):
        a.learn(ctx, d.arm, 1.0, d.propensity)
