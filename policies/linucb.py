"""Disjoint LinUCB (Li et al. 2010): one ridge regression per artwork, pick the highest upper bound.

The score of arm k for context x is x·θ_k + alpha·sqrt(xᵀA_k⁻¹x) (statistics in `policies.ridge`). All
greedy mass goes to the best score, split equally among ties; the base class adds the probability floor
and samples. A new artwork starts at A = ridge·I, b = 0: its bonus alpha·|x|/sqrt(ridge) is large, so it is
explored until its own data shrinks it. Rewards are learned as observed (propensities are not used).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

import numpy as np

from policies.base import check_number, floored_greedy_row, greedy_split
from policies.ridge import RidgePolicy, RidgeSettings

_PYTHON_ARMS = 24


@dataclass(frozen=True)
class LinUCBSettings(RidgeSettings):
    """alpha: width of the confidence bonus (>= 0; 0 is greedy)."""

    alpha: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("alpha", self.alpha, low=0.0)


class LinUCB(RidgePolicy):
    name = "linucb"
    settings_class = LinUCBSettings
    settings: LinUCBSettings

    def _raw_probabilities(self, x: np.ndarray) -> np.ndarray:
        mean, var = self._stats.mean_var(x)
        return greedy_split(mean + self.settings.alpha * np.sqrt(var))

    def _probability_row(self, x: np.ndarray) -> list[float]:
        # The same arithmetic as the batch path (sqrt is correctly rounded in both math and numpy);
        # xᵀA⁻¹x > 0 since A⁻¹ is positive definite and x carries the bias 1. Python floats beat numpy's
        # per-call overhead up to a few dozen arms.
        mean, var = self._stats.mean_var_row(x)
        alpha = self.settings.alpha
        if len(var) <= _PYTHON_ARMS:
            scores = [m + alpha * sqrt(v) for m, v in zip(mean, var, strict=True)]
        else:
            scores = (np.array(mean) + alpha * np.sqrt(np.array(var))).tolist()
        return floored_greedy_row(scores, self.floor)

