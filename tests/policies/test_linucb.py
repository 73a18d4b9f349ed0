"""LinUCB: the kept inverse, the score formula, forgetting, new artworks, parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from policies import create_policy, load_policy
from policies.linucb import LinUCB
from policies.state import unpack

FEATURES = [f"f{i}" for i in range(16)]


def make(arms: list[str], **params: object) -> LinUCB:
    p = create_policy("linucb", arms=arms, features=FEATURES, seed=5, **params)
    assert isinstance(p, LinUCB)
    return p


def state(p: LinUCB) -> dict[str, np.ndarray]:
    return unpack(p.to_bytes())[1]


def with_bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))])


def test_inverse_stays_within_1e6_of_numpy_inverse_after_100k_updates() -> None:
    n = 100_000
    rng = np.random.default_rng(0)
    # Correlated tastes (a shared direction plus noise) make A ill-conditioned, the hard case for drift.
    x = np.clip(rng.random((n, 1)) * rng.random(16) + 0.05 * rng.random((n, 16)), 0, 1)
    arms = rng.integers(3, size=n)
    rewards = (rng.random(n) < 0.2).astype(float)
    p = make(["a", "b", "c"])
    for row, k, r in zip(x.tolist(), arms.tolist(), rewards.tolist(), strict=True):
        p.learn(dict(zip(FEATURES, row, strict=True)), "abc"[k], r, 0.5)
    s = state(p)
    xb = with_bias(x)
    for k in range(3):
        rows = arms == k
        a_k = np.eye(17) + xb[rows].T @ xb[rows]
        assert np.allclose(s["A"][k], a_k, rtol=1e-12, atol=1e-9)
        assert np.allclose(s["b"][k], xb[rows].T @ rewards[rows], rtol=1e-12, atol=1e-9)
        inv = np.linalg.inv(s["A"][k])
        assert np.abs(s["A_inv"][k] - inv).max() <= 1e-6 * np.abs(inv).max()
        assert np.allclose(s["theta"][k], inv @ s["b"][k], rtol=1e-6, atol=1e-9)


def test_sherman_morrison_alone_tracks_the_inverse() -> None:
    p = make(["a", "b"], refactor_every=10**9)
    rng = np.random.default_rng(1)
    x = rng.random((3000, 16))
    for row in x.tolist():
        p.learn(dict(zip(FEATURES, row, strict=True)), "a", 1.0, 1.0)
    s = state(p)
    assert s["updates"].tolist() == [3000, 0]
    assert np.abs(s["A_inv"][0] - np.linalg.inv(s["A"][0])).max() <= 1e-9 * np.abs(s["A_inv"][0]).max()


def test_batch_learning_tracks_the_inverse() -> None:
    """learn_batch updates A⁻¹ by Woodbury (m rows < d per arm here), which must not drift either."""
    p = make(["a", "b", "c"], refactor_every=10**9)
    rng = np.random.default_rng(6)
    for _ in range(300):
        x = rng.random((30, 16))
        p.learn_batch(x, rng.integers(3, size=30), (rng.random(30) < 0.3).astype(float), np.full(30, 0.5))
    s = state(p)
    assert s["updates"].min() > 100  # rows applied by Woodbury since the last re-inversion
    for k in range(3):
        inv = np.linalg.inv(s["A"][k])
        assert np.abs(s["A_inv"][k] - inv).max() <= 1e-9 * np.abs(inv).max()
        assert np.array_equal(s["A_inv"][k], s["A_inv"][k].T)


def test_scores_are_mean_plus_alpha_times_width() -> None:
    alpha, ridge = 0.7, 2.0
    p = make(["a", "b", "c"], alpha=alpha, ridge=ridge, floor=1e-6)
    rng = np.random.default_rng(2)
    x = rng.random((60, 16))
    arms = rng.integers(3, size=60)
    r = rng.random(60)
    p.learn_batch(x, arms, r, np.full(60, 1 / 3))
    probe = rng.random((200, 16))
    xb, pb = with_bias(x), with_bias(probe)
    scores = np.empty((200, 3))
    for k in range(3):
        a_k = ridge * np.eye(17) + xb[arms == k].T @ xb[arms == k]
        theta = np.linalg.solve(a_k, xb[arms == k].T @ r[arms == k])
        width = np.sqrt(np.einsum("nd,de,ne->n", pb, np.linalg.inv(a_k), pb))
        scores[:, k] = pb @ theta + alpha * width
    got = p.decide_batch(probe).probabilities.argmax(axis=1)
    assert np.array_equal(got, scores.argmax(axis=1))


@pytest.mark.parametrize("k", [3, 40])  # 40 arms take the numpy scoring path of single calls
def test_single_and_batch_decisions_agree(k: int) -> None:
    arms = [f"art{i}" for i in range(k)]
    a, b = make(arms), make(arms)
    rng = np.random.default_rng(7)
    x = rng.random((400, 16))
    idx = rng.integers(k, size=400)
    r = (rng.random(400) < 0.3).astype(float)
    a.learn_batch(x, idx, r, np.full(400, 1 / k))
    b.learn_batch(x, idx, r, np.full(400, 1 / k))
    probe = rng.random((100, 16))
    batch = a.decide_batch(probe)
    singles = [b.decide(dict(zip(FEATURES, row.tolist(), strict=True))) for row in probe]
    assert [batch.arms[i] for i in batch.chosen] == [d.arm for d in singles]
    assert np.allclose(batch.propensities, [d.propensity for d in singles], rtol=0, atol=1e-12)


def test_untrained_arms_tie_and_split_the_mass() -> None:
    p = make(["a", "b", "c", "d"], floor=0.01)
    probs = p.decide({"f0": 0.5}).probabilities
    assert all(v == pytest.approx(0.25, abs=1e-12) for v in probs.values())
    chosen = [p.decide({"f0": 0.5}).arm for _ in range(4000)]
    assert all(850 < chosen.count(a) < 1150 for a in "abcd")


def test_forgetting_weights_old_observations_by_gamma() -> None:
    gamma, ridge = 0.9, 1.5
    p = make(["a", "b"], forgetting=gamma, ridge=ridge)
    q = make(["a", "b"], forgetting=gamma, ridge=ridge)
    rng = np.random.default_rng(3)
    x = rng.random((40, 16))
    arms = rng.integers(2, size=40)
    r = (rng.random(40) < 0.5).astype(float)
    for row, k, rr in zip(x, arms, r, strict=True):
        p.learn(dict(zip(FEATURES, row.tolist(), strict=True)), "ab"[k], float(rr), 0.5)
    q.learn_batch(x, arms, r, np.full(40, 0.5))
    sp, sq = state(p), state(q)
    xb = with_bias(x)
    for k in range(2):
        rows = xb[arms == k]
        m = len(rows)
        w = gamma ** np.arange(m - 1, -1, -1)
        a_k = ridge * np.eye(17) + (rows * w[:, None]).T @ rows  # the ridge itself is not forgotten
        b_k = rows.T @ (w * r[arms == k])
        for s in (sp, sq):
            assert np.allclose(s["A"][k], a_k, rtol=1e-12, atol=1e-12)
            assert np.allclose(s["b"][k], b_k, rtol=1e-12, atol=1e-12)
            assert np.allclose(s["A_inv"][k], np.linalg.inv(a_k), rtol=1e-9, atol=1e-12)


def test_forgetting_follows_a_change_of_taste() -> None:
    """Arm a is better for 3000 rounds, then arm b; with forgetting the policy switches much sooner."""

    def share_of_b_after_switch(gamma: float) -> float:
        p = make(["a", "b"], forgetting=gamma, alpha=0.2)
        # not the policy's seed: equal streams would correlate choice and click
        rng = np.random.default_rng(4)
        picks = []
        for t in range(4000):
            d = p.decide({})
            good = "a" if t < 3000 else "b"
            p.learn({}, d.arm, float(rng.random() < (0.6 if d.arm == good else 0.3)), d.propensity)
            if t >= 3000:
                picks.append(d.arm == "b")
        return float(np.mean(picks))

    assert share_of_b_after_switch(0.95) > 0.8
    assert share_of_b_after_switch(1.0) < 0.2


def test_greedy_alpha_zero_picks_the_best_mean() -> None:
    p = make(["a", "b"], alpha=0.0, floor=1e-6)
    for _ in range(20):
        p.learn({"f1": 1.0}, "a", 0.2, 1.0)
        p.learn({"f1": 1.0}, "b", 0.6, 1.0)
    assert p.decide({"f1": 1.0}).arm == "b"
    assert load_policy(p.to_bytes()).decide({"f1": 1.0}).arm == "b"


BAD_PARAMS = [
    ({"alpha": -1.0}, r"alpha must be in \[0, inf\], got -1.0"),
    ({"alpha": float("inf")}, "alpha must be finite"),
    ({"ridge": 0.0}, r"ridge must be in \(0, inf\], got 0.0"),
    ({"forgetting": 0.0}, r"forgetting must be in \(0, 1\], got 0.0"),
    ({"forgetting": 1.5}, r"forgetting must be in \(0, 1\], got 1.5"),
    ({"refactor_every": 0}, r"refactor_every must be in \[1, inf\], got 0"),
    ({"refactor_every": 2.5}, "refactor_every must be an integer, got 2.5"),
]


@pytest.mark.parametrize(("params", "fragment"), BAD_PARAMS)
def test_bad_parameters_name_the_field_and_bound(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make(["a", "b"], **params)


def test_rounding_below_zero_variance_does_not_break_deciding() -> None:
    """A demo run once hit xᵀA⁻¹x = -1e-17 and answered 400 'math domain error'; the variance is clamped."""
    p = create_policy("linucb", arms=["a", "b"], features=["f"], seed=1)
    p._stats.A_inv[0] = -1e-12 * np.eye(2)  # type: ignore[attr-defined]  # A_inv is a view of the joint array
    d = p.decide({"f": 0.5})
    assert abs(sum(d.probabilities.values()) - 1.0) < 1e-12
    b = p.decide_batch(np.array([[0.5], [0.1]]))
    assert np.isfinite(b.probabilities).all()
