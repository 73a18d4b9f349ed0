"""A small linear-logistic world for policy tests (the simulator package has its own, richer one).

Each viewer has a taste vector over genres; each artwork appeals mostly to one genre. The click
probability of artwork k for taste x is sigmoid(bias_k + weights_k · x), so the best artwork depends on
the viewer and a context-free policy cannot reach the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies import Policy

FEATURES = ("romance", "comedy", "drama", "horror")
ARMS = ("kiss", "pratfall", "tears", "scream")


@dataclass(frozen=True)
class LogisticWorld:
    weights: np.ndarray  # (K, d)
    bias: np.ndarray  # (K,)
    arms: tuple[str, ...] = ARMS
    features: tuple[str, ...] = FEATURES

    def contexts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, d) tastes: one dominant genre plus a little of the others, in [0, 1]."""
        x = 0.2 * rng.random((n, len(self.features)))
        x[np.arange(n), rng.integers(len(self.features), size=n)] += 0.8
        return x

    def click_probability(self, x: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, K)."""
        return 1.0 / (1.0 + np.exp(-(x @ self.weights.T + self.bias)))


def make_world() -> LogisticWorld:
    """Artwork k appeals to genre k; the drama artwork also has a higher base rate."""
    weights = 3.0 * np.eye(len(ARMS), len(FEATURES))
    bias = np.array([-2.5, -2.5, -2.2, -2.5])
    return LogisticWorld(weights=weights, bias=bias)


def as_context(world: LogisticWorld, row: np.ndarray) -> dict[str, float]:
    return dict(zip(world.features, row.tolist(), strict=True))


def run_online(policy: Policy, world: LogisticWorld, rounds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Decide and learn one viewer at a time. Returns (expected reward of the chosen arm, oracle) per round.

    Expected rewards (not the sampled clicks) are compared, which removes most of the click noise."""
    rng = np.random.default_rng(seed)
    x = world.contexts(rng, rounds)
    probs = world.click_probability(x)
    clicks = rng.random(rounds)
    index = {a: i for i, a in enumerate(world.arms)}
    got = np.empty(rounds)
    for t in range(rounds):
        context = as_context(world, x[t])
        d = policy.decide(context)
        k = index[d.arm]
        got[t] = probs[t, k]
        policy.learn(context, d.arm, float(clicks[t] < probs[t, k]), d.propensity)
    return got, probs.max(axis=1)
