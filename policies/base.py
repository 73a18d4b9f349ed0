"""The one interface every policy implements, and the pieces they share.

A policy maps a context (taste features of one viewer) to a probability over arms (artworks), samples one
arm from that probability, and learns from (context, arm, reward, propensity). Context vectors get a
constant bias term appended, so every linear model also learns each artwork's base rate.

Sampling always consumes exactly one uniform draw per decision from the injected generator, and ties are
broken by splitting the greedy mass equally among tied arms before sampling. That keeps decisions
reproducible for a seed and makes the batch path (`decide_batch`) draw the same arms as one-at-a-time
calls.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from policies import state as _state

Context = Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision: the chosen arm, the full probability over arms and the chosen arm's probability."""

    arm: str
    probabilities: dict[str, float]
    propensity: float


@dataclass(frozen=True, slots=True)
class BatchDecision:
    """Decisions for n contexts at once; column j of `probabilities` is arm `arms[j]`."""

    arms: tuple[str, ...]
    chosen: np.ndarray  # (n,) int indices into `arms`
    probabilities: np.ndarray  # (n, K)

    @property
    def propensities(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.chosen)), self.chosen]


@dataclass(frozen=True)
class Settings:
    """Base of every policy's settings. `floor` is the minimum probability of each arm (None: 0.05/K)."""

    floor: float | None = None

    def __post_init__(self) -> None:
        if self.floor is not None:
            _check_number("floor", self.floor, low=0.0, high=1.0, low_open=True)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    """Raise ValueError naming the field and the bound (e.g. "epsilon must be in [0, 1], got 1.5")."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo_b = "(" if low_open else "["
    hi_b = ")" if high_open else "]"
    lo_s = "-inf" if low is None else f"{low:g}"
    hi_s = "inf" if high is None else f"{high:g}"
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        raise ValueError(f"{name} must be in {lo_b}{lo_s}, {hi_s}{hi_b}, got {value!r}")


check_number = _check_number


class Policy(ABC):
    """Base class: arm bookkeeping, context validation, floor, sampling, serialization frame.

    Subclasses set `name` and `settings_class`, keep per-arm statistics in arrays indexed like
    `self._arms`, and implement `_scores_probabilities` (the probability before the floor) and `_learn_index`.
    """

    name: ClassVar[str]
    settings_class: ClassVar[type[Settings]] = Settings

    def __init__(
        self,
        arms: Sequence[str],
        features: Sequence[str],
        seed: int | None = None,
        **params: Any,
    ) -> None:
        arms = list(arms)
        if not arms:
            raise ValueError("arms must not be empty")
        for a in arms:
            if not isinstance(a, str) or not a:
                raise ValueError(f"arm ids must be non-empty strings, got {a!r}")
        if len(set(arms)) != len(arms):
            raise ValueError(f"arm ids must be unique, got {arms}")
        features = list(features)
        for f in features:
            if not isinstance(f, str) or not f:
                raise ValueError(f"feature names must be non-empty strings, got {f!r}")
        if len(set(features)) != len(features):
            raise ValueError(f"feature names must be unique, got {features}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        try:
            self.settings = self.settings_class(**params)
        except TypeError as exc:  # unknown keyword
            allowed = ", ".join(f.name for f in fields(self.settings_class))
            raise ValueError(f"{self.name}: {exc}; allowed parameters: {allowed}") from exc
        self._arms: list[str] = arms
        self._arm_index: dict[str, int] = {a: i for i, a in enumerate(arms)}
        self._features: list[str] = features
        self._feature_index: dict[str, int] = {f: i for i, f in enumerate(features)}
        self._rng = np.random.default_rng(seed)
        self._init_state()

    # ----------------------------------------------------------------- subclass hooks
    @abstractmethod
    def _init_state(self) -> None:
        """Create the statistics for `self._arms` (called once by __init__, not on load)."""

    @abstractmethod
    def _raw_probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, d+1) contexts with bias -> (n, K) probabilities before the floor (rows sum to 1)."""

    @abstractmethod
    def _learn_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray, props: np.ndarray) -> None:
        """Apply n observations in order: x (n, d+1), arms (n,) indices, rewards (n,), propensities (n,)."""

    @abstractmethod
    def _on_add_arm(self, arm: str, arm_features: Mapping[str, float] | None) -> None:
        """Grow the statistics by one arm (already appended to `self._arms`)."""

    @abstractmethod
    def _on_remove_arm(self, index: int) -> None:
        """Drop the statistics of the arm at `index` (already removed from `self._arms`)."""

    @abstractmethod
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Arrays that, with `_state_json`, fully describe the learned state."""

    def _state_json(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def _load_state(self, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Inverse of `_state_arrays` / `_state_json`."""

    # ----------------------------------------------------------------- public API
    @property
    def arms(self) -> list[str]:
        return list(self._arms)

    @property
    def features(self) -> list[str]:
        return list(self._features)

    @property
    def floor(self) -> float:
        k = len(self._arms)
        f = self.settings.floor if self.settings.floor is not None else 0.05 / k
        return min(f, 1.0 / k)

    def vectorize(self, context: Context) -> np.ndarray:
        """Context mapping -> vector of len(features)+1 (bias last). Missing features count as 0."""
        if not isinstance(context, Mapping):
            raise ValueError(f"context must be a mapping of feature name to number, got {type(context).__name__}")
        x = np.zeros(len(self._features) + 1)
        x[-1] = 1.0
        for key, value in context.items():
            i = self._feature_index.get(key)
            if i is None:
                raise ValueError(f"unknown feature {key!r}; known features: {', '.join(self._features)}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"feature {key!r} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"feature {key!r} must be finite, got {value!r}")
            x[i] = value
        return x

    def vectorize_batch(self, contexts: np.ndarray) -> np.ndarray:
        """(n, d) array in `features` order -> (n, d+1) with the bias column; rejects NaN/inf."""
        arr = np.asarray(contexts, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(self._features):
            raise ValueError(f"contexts must have shape (n, {len(self._features)}), got {arr.shape}")
        if not np.isfinite(arr).all():
            row = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise ValueError(f"contexts must be finite; row {row} has NaN or inf")
        return np.hstack([arr, np.ones((arr.shape[0], 1))])

    def probabilities(self, context: Context) -> dict[str, float]:
        """The floored probability over arms for this context, without sampling."""
        p = self._floored(self._raw_probabilities(self.vectorize(context)[None, :]))[0]
        return dict(zip(self._arms, p.tolist(), strict=True))

    def decide(self, context: Context) -> Decision:
        x = self.vectorize(context)[None, :]
        p = self._floored(self._raw_probabilities(x))[0]
        i = self._sample(p)
        return Decision(self._arms[i], dict(zip(self._arms, p.tolist(), strict=True)), float(p[i]))

    def decide_batch(self, contexts: np.ndarray) -> BatchDecision:
        """Decide for each row of an (n, d) array without learning in between."""
        x = self.vectorize_batch(contexts)
        p = self._floored(self._raw_probabilities(x))
        u = self._rng.random(len(p))
        c = np.cumsum(p, axis=1)
        chosen = np.minimum((c < u[:, None] * c[:, -1:]).sum(axis=1), len(self._arms) - 1)
        return BatchDecision(tuple(self._arms), chosen, p)

    def learn(self, context: Context, arm: str, reward: float, propensity: float) -> None:
        x = self.vectorize(context)[None, :]
        i = self._index_of(arm)
        self._check_reward_propensity(reward, propensity)
        self._learn_rows(x, np.array([i]), np.array([float(reward)]), np.array([float(propensity)]))

    def learn_batch(
        self, contexts: np.ndarray, arms: Sequence[str] | np.ndarray, rewards: np.ndarray, propensities: np.ndarray
    ) -> None:
        """Apply n observations in order. `arms` are arm ids or integer indices into `self.arms`."""
        x = self.vectorize_batch(contexts)
        n = x.shape[0]
        arms_arr = np.asarray(arms)
        if arms_arr.shape != (n,):
            raise ValueError(f"arms must have shape ({n},), got {arms_arr.shape}")
        if arms_arr.dtype.kind in "iu":
            if n and (arms_arr.min() < 0 or arms_arr.max() >= len(self._arms)):
                raise ValueError(f"arm indices must be in [0, {len(self._arms) - 1}]")
            idx = arms_arr.astype(np.intp)
        else:
            idx = np.array([self._index_of(str(a)) for a in arms_arr], dtype=np.intp)
        r = np.asarray(rewards, dtype=float)
        q = np.asarray(propensities, dtype=float)
        if r.shape != (n,) or q.shape != (n,):
            raise ValueError(f"rewards and propensities must have shape ({n},)")
        if not np.isfinite(r).all():
            raise ValueError(f"reward must be finite; row {int(np.argwhere(~np.isfinite(r))[0][0])} is not")
        bad = ~((q > 0) & (q <= 1))
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(f"propensity must be in (0, 1], got {q[row]!r} at row {row}")
        if n:
            self._learn_rows(x, idx, r, q)

    def add_arm(self, arm: str, features: Mapping[str, float] | None = None) -> None:
        """Add an artwork while live; it starts with no data and gets explored."""
        if not isinstance(arm, str) or not arm:
            raise ValueError(f"arm ids must be non-empty strings, got {arm!r}")
        if arm in self._arm_index:
            raise ValueError(f"arm {arm!r} already exists")
        self._arms.append(arm)
        self._arm_index[arm] = len(self._arms) - 1
        self._on_add_arm(arm, features)

    def remove_arm(self, arm: str) -> None:
        """Remove an artwork; it is never chosen again."""
        i = self._index_of(arm)
        if len(self._arms) == 1:
            raise ValueError("cannot remove the last arm")
        del self._arms[i]
        self._arm_index = {a: j for j, a in enumerate(self._arms)}
        self._on_remove_arm(i)

    def to_bytes(self) -> bytes:
        meta = {
            "policy": self.name,
            "arms": self._arms,
            "features": self._features,
            "settings": self.settings.to_json(),
            "rng": self._rng.bit_generator.state,
            "state": self._state_json(),
        }
        return _state.pack(meta, self._state_arrays())

    @classmethod
    def _from_state(cls, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> Policy:
        obj = cls.__new__(cls)
        obj.settings = cls.settings_class(**meta["settings"])
        obj._arms = list(meta["arms"])
        obj._arm_index = {a: i for i, a in enumerate(obj._arms)}
        obj._features = list(meta["features"])
        obj._feature_index = {f: i for i, f in enumerate(obj._features)}
        obj._rng = np.random.default_rng()
        obj._rng.bit_generator.state = meta["rng"]
        obj._load_state(meta["state"], arrays)
        return obj

    # ----------------------------------------------------------------- helpers
    def _index_of(self, arm: str) -> int:
        i = self._arm_index.get(arm)
        if i is None:
            raise ValueError(f"unknown arm {arm!r}; arms: {', '.join(self._arms)}")
        return i

    @staticmethod
    def _check_reward_propensity(reward: float, propensity: float) -> None:
        if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        if (
            isinstance(propensity, bool)
            or not isinstance(propensity, int | float)
            or not (0.0 < propensity <= 1.0)
        ):
            raise ValueError(f"propensity must be in (0, 1], got {propensity!r}")

    def _floored(self, p: np.ndarray) -> np.ndarray:
        k = p.shape[1]
        f = self.floor
        return (1.0 - k * f) * p + f

    def _sample(self, p: np.ndarray) -> int:
        u = self._rng.random()
        c = np.cumsum(p)
        return min(int((c < u * c[-1]).sum()), len(p) - 1)


def greedy_split(scores: np.ndarray, rtol: float = 1e-12) -> np.ndarray:
    """(n, K) scores -> (n, K) probabilities putting all mass on the argmax, split equally among ties."""
    best = scores.max(axis=1, keepdims=True)
    tol = rtol * np.maximum(np.abs(best), 1.0)
    top = (scores >= best - tol).astype(float)
    return top / top.sum(axis=1, keepdims=True)
