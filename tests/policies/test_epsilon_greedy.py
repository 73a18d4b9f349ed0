"""ε-greedy: choice frequencies, decay, ties, new artworks, parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from policies import create_policy
from policies.epsilon_greedy import EpsilonGreedy

ARMS = ["romance", "comedy", "action", "drama"]


def make(**params: object) -> EpsilonGreedy:
    p = create_policy("epsilon_greedy", arms=ARMS, features=["romance"], seed=3, **params)
    assert isinstance(p, EpsilonGreedy)
    return p


def teach(p: EpsilonGreedy, best: str) -> None:
    """One observation per arm: `best` clicked, the others not."""
    for arm in p.arms:
        p.learn({}, arm, 1.0 if arm == best else 0.0, 0.25)


@pytest.mark.parametrize("epsilon", [0.1, 0.3])
def test_choice_frequencies_match_one_minus_epsilon_plus_epsilon_over_k(epsilon: float) -> None:
    p = make(epsilon=epsilon)
    teach(p, "comedy")
    k, n = len(ARMS), 20_000
    want = {a: (1 - epsilon + epsilon / k) if a == "comedy" else epsilon / k for a in ARMS}
    d = p.decide({})
    assert d.probabilities == pytest.approx(want, abs=1e-12)
    counts = dict.fromkeys(ARMS, 0)
    for _ in range(n):
        counts[p.decide({}).arm] += 1
    for arm in ARMS:
        sd = np.sqrt(want[arm] * (1 - want[arm]) / n)
        assert abs(counts[arm] / n - want[arm]) < 4 * sd, (arm, counts[arm] / n, want[arm])
    batch = p.decide_batch(np.zeros((n, 1)))
    share = np.bincount(batch.chosen, minlength=k) / n
    assert share[ARMS.index("comedy")] == pytest.approx(want["comedy"], abs=4 * np.sqrt(0.25 / n))


def test_floor_binds_only_when_epsilon_over_k_is_below_it() -> None:
    p = make(epsilon=0.04, floor=0.02)  # ε/K = 0.01 < floor
    teach(p, "action")
    probs = p.decide({}).probabilities
    assert min(probs.values()) == pytest.approx(0.02, abs=1e-12)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
    assert max(probs, key=probs.__getitem__) == "action"


def test_decay_follows_epsilon_over_one_plus_decay_t() -> None:
    p = make(epsilon=0.5, decay=0.01, floor=1e-6)
    teach(p, "drama")
    for _ in range(96):
        p.learn({}, "drama", 1.0, 0.5)
    eps_t = 0.5 / (1 + 0.01 * 100)
    assert p.epsilon_now == pytest.approx(eps_t)
    assert p.decide({}).probabilities["romance"] == pytest.approx(eps_t / 4, abs=1e-6)
    assert p.decide({}).probabilities["drama"] == pytest.approx(1 - eps_t + eps_t / 4, abs=1e-6)


def test_ties_split_the_greedy_mass_and_are_broken_at_random() -> None:
    p = make(epsilon=0.0, floor=1e-6)
    for arm, r in [("romance", 1.0), ("comedy", 1.0), ("action", 0.0), ("drama", 0.0)]:
        p.learn({}, arm, r, 0.25)
    probs = p.decide({}).probabilities
    assert probs["romance"] == pytest.approx(0.5, abs=1e-5)
    assert probs["comedy"] == pytest.approx(0.5, abs=1e-5)
    picks = [p.decide({}).arm for _ in range(2000)]
    assert 900 < picks.count("romance") < 1100 and picks.count("romance") + picks.count("comedy") >= 1998


def test_every_arm_is_tried_before_being_judged() -> None:
    p = make(epsilon=0.0, min_pulls=2, floor=1e-6)
    p.learn({}, "romance", 1.0, 1.0)
    p.learn({}, "romance", 1.0, 1.0)
    probs = p.decide({}).probabilities
    # romance is the best judged arm; the three untried ones count as tied with it
    assert all(v == pytest.approx(0.25, abs=1e-5) for v in probs.values())


def test_new_arm_is_explored_until_it_has_data() -> None:
    p = make(epsilon=0.1)
    rng = np.random.default_rng(0)
    for _ in range(500):
        d = p.decide({})
        p.learn({}, d.arm, float(rng.random() < (0.3 if d.arm == "comedy" else 0.1)), d.propensity)
    p.add_arm("horror")
    probs = p.decide({}).probabilities
    assert probs["horror"] == pytest.approx(0.9 / 2 + 0.1 / 5, abs=1e-12)  # tied with the best
    chosen = sum(p.decide({}).arm == "horror" for _ in range(200))
    assert chosen > 60
    p.learn({}, "horror", 0.0, probs["horror"])
    assert p.decide({}).probabilities["horror"] == pytest.approx(0.1 / 5, abs=1e-12)


BAD_PARAMS = [
    ({"epsilon": 1.5}, r"epsilon must be in \[0, 1\], got 1.5"),
    ({"epsilon": -0.1}, r"epsilon must be in \[0, 1\], got -0.1"),
    ({"epsilon": "0.1"}, "epsilon must be a number, got '0.1'"),
    ({"epsilon": float("nan")}, "epsilon must be finite"),
    ({"decay": -1.0}, r"decay must be in \[0, inf\], got -1.0"),
    ({"min_pulls": -1}, r"min_pulls must be in \[0, inf\], got -1"),
    ({"min_pulls": 1.5}, "min_pulls must be an integer, got 1.5"),
]


@pytest.mark.parametrize(("params", "fragment"), BAD_PARAMS)
def test_bad_parameters_name_the_field_and_bound(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make(**params)
