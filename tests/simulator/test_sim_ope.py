"""Off-policy estimators: exact identities on uniform logs, and interval coverage against the truth."""

from __future__ import annotations

import numpy as np
import pytest

from policies import Policy, create_policy, load_policy
from service.reporting import ope
from service.reporting.ope import LoggedData
from simulator.config import WorldConfig
from simulator.replay import evaluate
from simulator.synthetic_logs import simulate_logs
from simulator.world import World

K = 4
ARMS = [f"art{k}" for k in range(K)]


def uniform_logs(n: int, seed: int, balanced: bool) -> LoggedData:
    rng = np.random.default_rng(seed)
    shown = np.tile(np.arange(K), n // K) if balanced else rng.integers(0, K, size=n)
    rng.shuffle(shown)
    ctr = np.array([0.05, 0.10, 0.20, 0.15])
    reward = (rng.random(len(shown)) < ctr[shown]).astype(float)
    return LoggedData(
        title=np.full(len(shown), "t", dtype=object),
        features=["x"],
        contexts=rng.random((len(shown), 1)),
        artwork=np.array([ARMS[k] for k in shown], dtype=object),
        reward=reward,
        propensity=np.full(len(shown), 1.0 / K),
        artworks=ARMS,
        probabilities=np.full((len(shown), K), 1.0 / K),
    )


def _shown(logs: LoggedData) -> np.ndarray:
    return np.array([ARMS.index(a) for a in logs.artwork])


@pytest.mark.parametrize("k", range(K))
def test_always_k_on_balanced_uniform_logs_is_the_empirical_ctr_exactly(k: int) -> None:
    logs = uniform_logs(400, seed=k, balanced=True)
    shown = _shown(logs)
    empirical = logs.reward[shown == k].mean()
    target = (shown == k).astype(float)  # P(always k shows the logged artwork)
    assert ope.ips(logs.reward, logs.propensity, target).value == pytest.approx(empirical, abs=1e-12)
    assert ope.snips(logs.reward, logs.propensity, target).value == pytest.approx(empirical, abs=1e-12)
    assert ope.replay(logs.reward[shown == k], len(logs)).value == pytest.approx(empirical, abs=1e-12)


def test_on_unbalanced_uniform_logs_replay_and_snips_stay_exact_and_ips_scales_by_the_count() -> None:
    logs = uniform_logs(401, seed=9, balanced=False)
    shown = _shown(logs)
    for k in range(K):
        empirical = logs.reward[shown == k].mean()
        target = (shown == k).astype(float)
        assert ope.snips(logs.reward, logs.propensity, target).value == pytest.approx(empirical, abs=1e-12)
        assert ope.replay(logs.reward[shown == k], len(logs)).value == pytest.approx(empirical, abs=1e-12)
        ips = ope.ips(logs.reward, logs.propensity, target).value
        assert ips == pytest.approx(empirical * (shown == k).sum() * K / len(logs), abs=1e-12)


@pytest.mark.parametrize("k", [0, 2])
def test_evaluate_with_the_fixed_policy_matches_the_empirical_ctr(k: int) -> None:
    """The real `fixed` policy through `evaluate` (floor 1e-12: as good as always-k)."""
    logs = uniform_logs(400, seed=k, balanced=True)
    empirical = logs.reward[_shown(logs) == k].mean()
    result = evaluate(logs, "fixed", {"arm": ARMS[k], "floor": 1e-12})
    values = {e.estimator: e.value for e in result.estimates}
    assert values["replay"] == pytest.approx(empirical, abs=1e-9)
    assert values["ips"] == pytest.approx(empirical, abs=1e-9)
    assert values["snips"] == pytest.approx(empirical, abs=1e-9)
    assert result.uniform_logs and not result.notes
    replay = result.estimates[0]
    assert replay.ess == (_shown(logs) == k).sum() == 100


def test_dr_with_a_perfect_reward_model_has_no_variance_from_the_logging() -> None:
    logs = uniform_logs(400, seed=1, balanced=False)
    shown = _shown(logs)
    target = np.tile([0.0, 0.0, 1.0, 0.0], (len(logs), 1))
    predictions = np.tile([0.05, 0.10, 0.20, 0.15], (len(logs), 1))
    est = ope.doubly_robust(logs.reward, logs.propensity, target, shown, predictions)
    assert est.low < 0.20 < est.high


def test_estimators_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        ope.ips(np.ones(1), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match=r"propensity must be in \(0, 1\], got 0.0 at row 1"):
        ope.ips(np.ones(3), np.array([0.5, 0.0, 0.5]), np.ones(3))


def _trained_target(world: World) -> bytes:
    arms, features = world.title_artworks(0), world.feature_names
    train = simulate_logs(world, lambda t: create_policy("uniform", arms, features, seed=0), 5000, seed=999)
    target = create_policy("linucb", arms, features, seed=5)
    target.learn_batch(
        train.data.contexts, np.array([arms.index(a) for a in train.data.artwork]), train.data.reward,
        train.data.propensity,
    )  # fmt: skip
    return target.to_bytes()


@pytest.mark.slow
def test_intervals_cover_the_true_value_of_another_policy_in_most_seeds() -> None:
    """Logs from a skewed `fixed` policy (floor 0.15); target: a frozen LinUCB trained elsewhere. The 95%
    intervals of IPS, SNIPS and DR must cover the target's true value in >= 90% of 50 seeds."""
    world = World.generate(WorldConfig(titles=1, artworks=4, tastes=6, viewers=2000, seed=3))
    arms, features = world.title_artworks(0), world.feature_names
    target_bytes = _trained_target(world)

    def frozen(title: str, a: list[str], f: list[str], seed: int) -> Policy:
        return load_policy(target_bytes)

    big = simulate_logs(
        world, lambda t: create_policy("uniform", arms, features, seed=0), 100_000, seed=12345
    )
    truth = big.true_value(load_policy(target_bytes).decide_batch(big.data.contexts).probabilities)
    logging_value = big.true_value(
        create_policy("fixed", arms, features, arm=arms[0], floor=0.15)
        .decide_batch(big.data.contexts)
        .probabilities
    )
    assert truth > logging_value + 0.03  # the target really differs from the logging policy
    covered = {"ips": 0, "snips": 0, "dr": 0}
    for seed in range(50):
        logs = simulate_logs(
            world,
            lambda t: create_policy("fixed", arms, features, seed=seed, arm=arms[0], floor=0.15),  # noqa: B023
            3000,
            seed,
        )
        result = evaluate(logs.data, "frozen-linucb", factory=frozen, learn=False)
        for e in result.estimates:
            if e.estimator in covered:
                covered[e.estimator] += e.covers(truth)
    assert all(c >= 45 for c in covered.values()), covered
