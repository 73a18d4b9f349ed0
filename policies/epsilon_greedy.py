"""ε-greedy on per-artwork mean reward (context-free).

With probability 1 - ε_t the best artwork by mean observed reward (ties split equally), otherwise a
uniformly random one: p_k = (1 - ε_t)·[k is best] / #best + ε_t / K, where

    ε_t = epsilon / (1 + decay · t),  t = observations learned so far (decay = 0: constant epsilon).

With `early_updates` a decision counts as a pull when it is made and its reward joins the sum when it
arrives (pending outcomes count as 0), so the counts equal deadline-only learning once all are known.

An artwork with fewer than `min_pulls` observations (every artwork at the start, and each one added while
live) counts as tied with the best, so it shares the greedy mass until it has data and is never starved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.base import Policy, Settings, check_number, greedy_split_row, resolve_early_updates


@dataclass(frozen=True)
class EpsilonGreedySettings(Settings):
    """epsilon in [0, 1]; decay >= 0; min_pulls: observations before an arm is judged by its mean;
    early_updates: true, false, or None/"auto" (true), a bool once constructed."""

    epsilon: float = 0.1
    decay: float = 0.0
    min_pulls: int = 1
    early_updates: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "early_updates", resolve_early_updates(self.early_updates))
        check_number("epsilon", self.epsilon, low=0.0, high=1.0)
        check_number("decay", self.decay, low=0.0)
        check_number("min_pulls", self.min_pulls, low=0, integer=True)


class EpsilonGreedy(Policy):
    name = "epsilon_greedy"
    settings_class = EpsilonGreedySettings
    settings: EpsilonGreedySettings

    def _init_state(self) -> None:
        k = len(self._arms)
        self._counts = np.zeros(k)
        self._sums = np.zeros(k)
        self._t = 0
        self._invalidate()

    @property
    def epsilon_now(self) -> float:
        """ε_t = epsilon / (1 + decay · t) for the t observations learned so far."""
        return self.settings.epsilon / (1.0 + self.settings.decay * self._t)

    def _invalidate(self) -> None:
        self._cache: list[float] | None = None
        self._floored_cache: list[float] | None = None

    def _distribution(self) -> list[float]:
        """K probabilities before the floor; cached until the next learn or arm change."""
        if self._cache is None:
            counts = self._counts.tolist()
            means = [s / n if n > 0 else 0.0 for s, n in zip(self._sums.tolist(), counts, strict=True)]
            best = greedy_split_row(means)
            pulls = self.settings.min_pulls
            top = [b > 0.0 or n < pulls for b, n in zip(best, counts, strict=True)]
            eps = self.epsilon_now
            greedy = (1.0 - eps) / sum(top)
            uniform = eps / len(top)
            self._cache = [greedy + uniform if t else uniform for t in top]
        return self._cache

    def _raw_probabilities(self, x: np.ndarray) -> np.ndarray:
        return np.repeat(np.array([self._distribution()]), x.shape[0], axis=0)

    def _probability_row(self, x: np.ndarray) -> list[float]:
        if self._floored_cache is None:
            self._floored_cache = self._floored_row(self._distribution())
        return self._floored_cache

    def _learn_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray, props: np.ndarray) -> None:
        np.add.at(self._counts, arms, 1.0)
        np.add.at(self._sums, arms, rewards)  # in order, so a batch sums exactly as single calls do
        self._t += len(arms)
        self._invalidate()

    def _learn_one(self, x: np.ndarray, arm: int, reward: float, propensity: float) -> None:
        self._counts[arm] += 1.0
        self._sums[arm] += reward
        self._t += 1
        self._invalidate()

    def _learn_decided_rows(self, x: np.ndarray, arms: np.ndarray) -> None:
        np.add.at(self._counts, arms, 1.0)
        self._t += len(arms)
        self._invalidate()

    def _learn_reward_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        np.add.at(self._sums, arms, rewards)
        self._invalidate()

    def _on_add_arm(self, arm: str, arm_features: Mapping[str, float] | None) -> None:
        self._counts = np.append(self._counts, 0.0)
        self._sums = np.append(self._sums, 0.0)
        self._invalidate()

    def _on_remove_arm(self, index: int) -> None:
        self._counts = np.delete(self._counts, index)
        self._sums = np.delete(self._sums, index)
        self._invalidate()

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self._counts, "sums": self._sums}

    def _state_json(self) -> dict[str, Any]:
        return {"t": self._t}

    def _load_state(self, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._counts = np.array(arrays["counts"], dtype=float)
        self._sums = np.array(arrays["sums"], dtype=float)
        self._t = int(meta["t"])
        self._invalidate()
