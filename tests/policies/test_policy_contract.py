"""The contract every registered policy keeps (parametrized over the registry, so new policies get it)."""

from __future__ import annotations

import numpy as np
import pytest

from policies import POLICIES, Policy, create_policy, load_policy

ARMS = ["romance", "comedy", "action", "drama"]
FEATURES = ["romance", "comedy", "drama", "horror"]
NAMES = sorted(POLICIES)


def make(name: str, seed: int = 7, **params: object) -> Policy:
    return create_policy(name, arms=ARMS, features=FEATURES, seed=seed, **params)


def contexts(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, len(FEATURES)))


def as_dict(row: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURES, row.tolist(), strict=True))


def reward_of(arm: str, row: np.ndarray, u: float) -> float:
    """A fixed toy world: the arm matching the strongest taste is clicked more often."""
    best = FEATURES[int(np.argmax(row))]
    return float(u < (0.6 if arm == best else 0.1))


def play(policy: Policy, rounds: int, seed: int) -> list[tuple[str, float]]:
    """Decide and learn `rounds` times; returns (arm, propensity) per round."""
    x = contexts(seed, rounds)
    u = np.random.default_rng(seed + 1).random(rounds)
    out = []
    for t in range(rounds):
        ctx = as_dict(x[t])
        d = policy.decide(ctx)
        out.append((d.arm, d.propensity))
        policy.learn(ctx, d.arm, reward_of(d.arm, x[t], u[t]), d.propensity)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_probabilities_sum_to_one_and_respect_the_floor(name: str) -> None:
    p = make(name, floor=0.02)
    play(p, 200, seed=1)
    x = contexts(2, 50)
    for row in x[:20]:
        d = p.decide(as_dict(row))
        probs = np.array([d.probabilities[a] for a in ARMS])
        assert list(d.probabilities) == ARMS
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert probs.min() >= 0.02 - 1e-12
        assert d.propensity == d.probabilities[d.arm]
    batch = p.decide_batch(x)
    assert np.allclose(batch.probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert batch.probabilities.min() >= 0.02 - 1e-12
    assert np.array_equal(batch.propensities, batch.probabilities[np.arange(50), batch.chosen])


@pytest.mark.parametrize("name", NAMES)
def test_default_floor_is_five_percent_over_k(name: str) -> None:
    p = make(name)
    play(p, 100, seed=3)
    assert p.floor == pytest.approx(0.05 / len(ARMS))
    assert p.decide_batch(contexts(4, 30)).probabilities.min() >= p.floor - 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_decisions(name: str) -> None:
    a, b = make(name, seed=11), make(name, seed=11)
    assert play(a, 150, seed=5) == play(b, 150, seed=5)


@pytest.mark.parametrize("name", NAMES)
def test_decide_batch_picks_what_repeated_decide_picks(name: str) -> None:
    a, b = make(name, seed=3), make(name, seed=3)
    play(a, 120, seed=6)
    play(b, 120, seed=6)
    x = contexts(8, 60)
    batch = a.decide_batch(x)
    singles = [b.decide(as_dict(row)) for row in x]
    assert [batch.arms[i] for i in batch.chosen] == [d.arm for d in singles]
    expected = np.array([[d.probabilities[arm] for arm in batch.arms] for d in singles])
    assert np.allclose(batch.probabilities, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_learn_batch_matches_repeated_learn(name: str) -> None:
    a, b = make(name, seed=4), make(name, seed=4)
    x = contexts(9, 80)
    arms = np.random.default_rng(10).integers(len(ARMS), size=80)
    rewards = (np.random.default_rng(11).random(80) < 0.3).astype(float)
    props = np.full(80, 0.25)
    a.learn_batch(x, arms, rewards, props)
    for row, k, r, q in zip(x, arms, rewards, props, strict=True):
        b.learn(as_dict(row), ARMS[k], float(r), float(q))
    probe = contexts(12, 40)
    pa, pb = a.decide_batch(probe), b.decide_batch(probe)
    assert np.array_equal(pa.chosen, pb.chosen)
    assert np.allclose(pa.probabilities, pb.probabilities, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_learn_batch_accepts_arm_ids(name: str) -> None:
    a, b = make(name, seed=4), make(name, seed=4)
    x = contexts(9, 30)
    idx = np.arange(30) % len(ARMS)
    ids = np.array([ARMS[i] for i in idx])
    a.learn_batch(x, idx, np.ones(30), np.full(30, 0.5))
    b.learn_batch(x, ids, np.ones(30), np.full(30, 0.5))
    probe = contexts(12, 20)
    assert np.allclose(a.decide_batch(probe).probabilities, b.decide_batch(probe).probabilities, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_decides_and_learns_exactly_as_the_original(name: str) -> None:
    p = make(name, seed=21)
    play(p, 150, seed=13)
    q = load_policy(p.to_bytes())
    assert type(q) is type(p)
    assert q.arms == p.arms and q.features == p.features and q.settings == p.settings
    assert play(q, 150, seed=14) == play(p, 150, seed=14)
    x = contexts(15, 30)
    pb, qb = p.decide_batch(x), q.decide_batch(x)
    assert np.array_equal(pb.chosen, qb.chosen)
    assert np.array_equal(pb.probabilities, qb.probabilities)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_after_arm_changes(name: str) -> None:
    p = make(name, seed=22)
    play(p, 60, seed=16)
    p.add_arm("horror")
    p.remove_arm("comedy")
    q = load_policy(p.to_bytes())
    assert q.arms == ["romance", "action", "drama", "horror"]
    x = contexts(17, 40)
    assert [p.decide(as_dict(r)) for r in x] == [q.decide(as_dict(r)) for r in x]


@pytest.mark.parametrize("name", NAMES)
def test_removed_arm_is_never_chosen_again(name: str) -> None:
    p = make(name, seed=5)
    play(p, 100, seed=18)
    p.remove_arm("romance")
    assert "romance" not in p.arms
    x = contexts(19, 300)
    for row in x[:150]:
        d = p.decide(as_dict(row))
        assert d.arm != "romance" and "romance" not in d.probabilities
        p.learn(as_dict(row), d.arm, 1.0, d.propensity)
    batch = p.decide_batch(x[150:])
    assert "romance" not in batch.arms and batch.probabilities.shape == (150, 3)
    with pytest.raises(ValueError, match="unknown arm 'romance'"):
        p.learn(as_dict(x[0]), "romance", 1.0, 0.5)


@pytest.mark.parametrize("name", NAMES)
def test_new_arm_gets_at_least_the_floor(name: str) -> None:
    """Every policy gives a new artwork at least the floor; the learning policies' own tests require more."""
    p = make(name, seed=6)
    play(p, 200, seed=20)
    p.add_arm("horror")
    x = contexts(21, 400)
    chosen = 0
    for row in x:
        d = p.decide(as_dict(row))
        assert d.probabilities["horror"] >= p.floor - 1e-12
        chosen += d.arm == "horror"
        p.learn(as_dict(row), d.arm, 0.0, d.propensity)
    assert chosen >= 1


# --------------------------------------------------------------------------- bad input
BAD_CONTEXTS = [
    ({"romance": 0.5, "western": 1.0}, "unknown feature 'western'"),
    ({"romance": float("nan")}, "feature 'romance' must be finite"),
    ({"comedy": float("inf")}, "feature 'comedy' must be finite"),
    ({"drama": -float("inf")}, "feature 'drama' must be finite"),
    ({"horror": "0.3"}, "feature 'horror' must be a number"),
    ({"horror": True}, "feature 'horror' must be a number"),
    ({"horror": None}, "feature 'horror' must be a number"),
    ({"horror": 10**400}, "feature 'horror' must be finite"),
    ([0.1, 0.2], "context must be a mapping"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("context", "fragment"), BAD_CONTEXTS)
def test_bad_context_is_rejected(name: str, context: object, fragment: str) -> None:
    p = make(name)
    with pytest.raises(ValueError, match=fragment):
        p.decide(context)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=fragment):
        p.learn(context, "comedy", 1.0, 0.5)  # type: ignore[arg-type]


BAD_LEARN = [
    ({"arm": "western"}, "unknown arm 'western'"),
    ({"reward": float("nan")}, "reward must be a finite number"),
    ({"reward": float("inf")}, "reward must be a finite number"),
    ({"reward": "1"}, "reward must be a finite number"),
    ({"reward": 10**400}, "reward must be a finite number"),
    ({"reward": True}, "reward must be a finite number"),
    ({"propensity": True}, r"propensity must be in \(0, 1\]"),
    ({"propensity": 0.0}, r"propensity must be in \(0, 1\]"),
    ({"propensity": 1.5}, r"propensity must be in \(0, 1\]"),
    ({"propensity": -0.1}, r"propensity must be in \(0, 1\]"),
    ({"propensity": float("nan")}, r"propensity must be in \(0, 1\]"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("change", "fragment"), BAD_LEARN)
def test_bad_learn_is_rejected_and_changes_nothing(
    name: str, change: dict[str, object], fragment: str
) -> None:
    p = make(name)
    before = p.to_bytes()
    args: dict[str, object] = {"context": {"romance": 0.5}, "arm": "comedy", "reward": 1.0, "propensity": 0.5}
    with pytest.raises(ValueError, match=fragment):
        p.learn(**(args | change))  # type: ignore[arg-type]
    assert load_policy(before).decide_batch(contexts(1, 20)).chosen.tolist() == (
        p.decide_batch(contexts(1, 20)).chosen.tolist()
    )


BAD_BATCH = [
    ({"contexts": np.full((3, 4), np.nan)}, "contexts must be finite; row 0"),
    ({"contexts": np.ones((3, 5))}, r"contexts must have shape \(n, 4\)"),
    ({"arms": np.array([0, 1, 4])}, r"arm indices must be in \[0, 3\]"),
    ({"arms": np.array(["romance", "comedy", "western"])}, "unknown arm 'western'"),
    ({"arms": np.array([0, 1])}, r"arms must have shape \(3,\)"),
    ({"rewards": np.array([1.0, np.inf, 0.0])}, "reward must be finite; row 1"),
    ({"propensities": np.array([0.5, 0.0, 0.5])}, r"propensity must be in \(0, 1\], got 0.0 at row 1"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("change", "fragment"), BAD_BATCH)
def test_bad_batch_is_rejected(name: str, change: dict[str, object], fragment: str) -> None:
    p = make(name)
    args: dict[str, object] = {
        "contexts": np.ones((3, 4)),
        "arms": np.array([0, 1, 2]),
        "rewards": np.ones(3),
        "propensities": np.full(3, 0.5),
    }
    with pytest.raises(ValueError, match=fragment):
        p.learn_batch(**(args | change))  # type: ignore[arg-type]
    if "contexts" in change:
        with pytest.raises(ValueError, match=fragment):
            p.decide_batch(change["contexts"])  # type: ignore[arg-type]


BAD_CONSTRUCTION = [
    ({"arms": []}, "arms must not be empty"),
    ({"arms": ["a", "a"]}, "arm ids must be unique"),
    ({"arms": ["a", ""]}, "arm ids must be non-empty strings"),
    ({"features": ["x", "x"]}, "feature names must be unique"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"floor": -0.1}, r"floor must be in \[0, 1\], got -0.1"),
    ({"floor": 1.5}, r"floor must be in \[0, 1\], got 1.5"),
    ({"bogus": 1}, "allowed parameters"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("change", "fragment"), BAD_CONSTRUCTION)
def test_bad_construction_is_rejected(name: str, change: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {"arms": ARMS, "features": FEATURES, "seed": 1}
    with pytest.raises(ValueError, match=fragment):
        create_policy(name, **(args | change))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_bad_arm_changes_are_rejected(name: str) -> None:
    p = make(name)
    with pytest.raises(ValueError, match="arm 'comedy' already exists"):
        p.add_arm("comedy")
    with pytest.raises(ValueError, match="unknown arm 'western'"):
        p.remove_arm("western")
    for arm in ARMS[1:]:
        p.remove_arm(arm)
    with pytest.raises(ValueError, match="cannot remove the last arm"):
        p.remove_arm(ARMS[0])
    assert p.decide({"romance": 1.0}).arm == ARMS[0]


def test_unknown_policy_and_corrupt_state() -> None:
    with pytest.raises(ValueError, match="unknown policy 'nope'; known policies: "):
        create_policy("nope", arms=ARMS, features=FEATURES)
    with pytest.raises(ValueError, match="bad magic bytes"):
        load_policy(b"not a policy at all")


def test_floor_zero_gives_a_deterministic_candidate() -> None:
    """Offline candidates may have floor 0 ("what if we always showed k"): the other artworks get 0."""
    p = make("fixed", arm=ARMS[1], floor=0.0)
    probs = p.decide_batch(contexts(4, 30)).probabilities
    assert np.all(probs[:, 1] == 1.0) and np.all(np.delete(probs, 1, axis=1) == 0.0)
    learner = make("linucb", alpha=0.0, floor=0.0)
    x = contexts(5, 40)
    learner.learn_batch(x, np.zeros(40, dtype=np.int64), np.ones(40), np.full(40, 0.25))
    assert (learner.decide_batch(x).probabilities == 0.0).any(axis=1).all()
