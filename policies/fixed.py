"""Always one given artwork (the "current default" baseline), except for the probability floor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.base import Policy, Settings


@dataclass(frozen=True)
class FixedSettings(Settings):
    arm: str | None = None  # None: the first arm

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arm is not None and (not isinstance(self.arm, str) or not self.arm):
            raise ValueError(f"arm must be a non-empty string, got {self.arm!r}")


class Fixed(Policy):
    name = "fixed"
    settings_class = FixedSettings
    settings: FixedSettings

    def _init_state(self) -> None:
        arm = self.settings.arm
        if arm is not None and arm not in self._arm_index:
            raise ValueError(f"arm {arm!r} is not one of the arms: {', '.join(self._arms)}")
        self._target = arm if arm is not None else self._arms[0]

    def _raw_probabilities(self, x: np.ndarray) -> np.ndarray:
        p = np.zeros((x.shape[0], len(self._arms)))
        # If the target artwork was removed, fall back to the first remaining one.
        p[:, self._arm_index.get(self._target, 0)] = 1.0
        return p

    def _learn_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray, props: np.ndarray) -> None:
        pass

    def _on_add_arm(self, arm: str, arm_features: Mapping[str, float] | None) -> None:
        pass

    def _on_remove_arm(self, index: int) -> None:
        pass

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _state_json(self) -> dict[str, Any]:
        return {"target": self._target}

    def _load_state(self, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._target = meta["target"]
