"""On a linear-logistic world where tastes differ, contextual policies approach the oracle and
context-free ones cannot (20k viewers, one decide + learn each)."""

from __future__ import annotations

import numpy as np
import pytest

from policies import create_policy
from tests.policies.world import make_world, run_online

ROUNDS = 20_000


def second_half_ratio(name: str, seed: int) -> float:
    world = make_world()
    policy = create_policy(name, arms=world.arms, features=world.features, seed=seed)
    got, oracle = run_online(policy, world, ROUNDS, seed=seed + 1000)
    half = ROUNDS // 2
    return float(got[half:].mean() / oracle[half:].mean())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linucb", "linear_ts", "vw"])
def test_contextual_policies_reach_90_percent_of_the_oracle(name: str) -> None:
    assert second_half_ratio(name, seed=1) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("name", ["epsilon_greedy", "uniform"])
def test_context_free_policies_stay_well_below(name: str) -> None:
    assert second_half_ratio(name, seed=1) <= 0.6


def test_the_world_rewards_context() -> None:
    """The best artwork differs across viewers, and the best single artwork is far from the oracle."""
    world = make_world()
    x = world.contexts(np.random.default_rng(0), 10_000)
    probs = world.click_probability(x)
    assert len(set(probs.argmax(axis=1).tolist())) == len(world.arms)
    assert probs.mean(axis=0).max() / probs.max(axis=1).mean() < 0.5
