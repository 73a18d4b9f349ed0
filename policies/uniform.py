"""Uniform random choice: the A/B control and the unbiased "explore" variant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from policies.base import Policy


class Uniform(Policy):
    name = "uniform"

    def _init_state(self) -> None:
        pass

    def _raw_probabilities(self, x: np.ndarray) -> np.ndarray:
        k = len(self._arms)
        return np.full((x.shape[0], k), 1.0 / k)

    def _learn_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray, props: np.ndarray) -> None:
        pass  # nothing to learn; inputs were validated by the caller

    def _on_add_arm(self, arm: str, arm_features: Mapping[str, float] | None) -> None:
        pass

    def _on_remove_arm(self, index: int) -> None:
        pass

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        pass
