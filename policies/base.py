"""The one interface every policy implements, and the pieces they share.

A policy maps a context (taste features of one viewer) to a probability over arms (artworks), samples one
arm from that probability, and learns from (context, arm, reward, propensity). Context vectors get a
constant bias term appended, so every linear model also learns each artwork's base rate.

Sampling always consumes exactly one uniform draw per decision from the injected generator, and ties are
broken by splitting the greedy mass equally among tied arms before sampling. That keeps decisions
reproducible for a seed and makes the batch path (`decide_batch`) draw the same arms as one-at-a-time
calls.

The floor binds only where needed: a probability vector whose smallest entry already reaches the floor is
logged unchanged; otherwise it is mixed with the uniform distribution just enough to lift the smallest
entry to the floor (argmax policies: (1 - K·floor)·p + floor).

Single calls (`decide`, `learn`) run on Python floats and one-row hooks (`_raw_probability_row`,
`_learn_one`) with the same arithmetic as the batch path, because numpy's per-call overhead dominates at
a handful of arms.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from itertools import accumulate
from typing import Any, ClassVar

import numpy as np

from policies import state as _state

Context = Mapping[str, float]

_PLAIN_NUMBERS = frozenset({float, int})
# Largest feature magnitude a policy accepts. Finite but huge values overflow the scores (LinUCB's
# x^T A^-1 x is inf beyond ~1e154) and a request died with a ZeroDivisionError; taste features are
# scaled to about [0, 1], so 1e6 rejects only values no scoring can use.
MAX_FEATURE_ABS = 1e6


class InvalidContext(ValueError):
    """The context given to decide/learn is not valid for this policy (unknown feature, not a number,
    NaN/inf). A ValueError, so callers may treat all bad input alike; the service maps only this one to
    a client error, so any other failure inside a policy surfaces as the bug it is."""


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
    """Base of every policy's settings. `floor` is the minimum probability of each arm (None: 0.05/K).
    0 is allowed for a candidate evaluated offline ("what if we always showed k"); the service refuses it
    for a served policy, whose logs must give every artwork a chance (service.catalog.PolicySpec)."""

    floor: float | None = None

    def __post_init__(self) -> None:
        if self.floor is not None:
            _check_number("floor", self.floor, low=0.0, high=1.0)

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
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
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


def resolve_early_updates(early_updates: object, forgetting: float = 1.0) -> bool:
    """The `early_updates` setting as a bool. None (or "auto") means: wherever early updates are valid,
    i.e. without forgetting; the measured evidence favours them everywhere else (docs/results.md). An
    explicit true needs forgetting = 1: with forgetting the discount of a reward would depend on when it
    arrived, so early statistics could not equal deadline-only ones."""
    if early_updates is None or early_updates == "auto":
        return forgetting == 1.0
    if not isinstance(early_updates, bool):
        raise ValueError(f'early_updates must be true, false or "auto", got {early_updates!r}')
    if early_updates and forgetting != 1.0:
        raise ValueError(f"early_updates needs forgetting = 1 (no forgetting), got forgetting={forgetting!r}")
    return early_updates


class Policy(ABC):
    """Base class: arm bookkeeping, context validation, floor, sampling, serialization frame.

    Subclasses set `name` and `settings_class`, keep per-arm statistics in arrays indexed like
    `self._arms`, and implement `_raw_probabilities` (the probability before the floor) and `_learn_rows`;
    they may override `_raw_probability_row` / `_probability_row` and `_learn_one` with faster one-context
    versions that keep the same arithmetic.

    A policy is not thread-safe (its numpy Generator is not, and LinUCB scores through a scratch buffer):
    callers that share one across threads serialize calls, as the service's `Decider` does.
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
        self._feature_order = tuple(features)
        self._rng = np.random.default_rng(seed)
        self._last_context: tuple[Context, dict[str, Any], np.ndarray] | None = None  # see learn()
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

    def _raw_probability_row(self, x: np.ndarray) -> list[float]:
        """One context (d+1,) -> K probabilities before the floor. Override only with the same arithmetic."""
        return self._raw_probabilities(x[None, :])[0].tolist()

    def _probability_row(self, x: np.ndarray) -> list[float]:
        """One context (d+1,) -> K floored probabilities, exactly as `_floored(_raw_probabilities(...))`."""
        return self._floored_row(self._raw_probability_row(x))

    def _learn_one(self, x: np.ndarray, arm: int, reward: float, propensity: float) -> None:
        """One observation (x has shape (d+1,)); override for speed with the same effect as `_learn_rows`."""
        self._learn_rows(x[None, :], np.array([arm]), np.array([reward]), np.array([propensity]))

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
        # Fast path for the common case (known names, plain finite floats/ints); anything else takes the
        # checked path below, which accepts or rejects with a message naming the feature.
        if type(context) is dict:
            if tuple(context) == self._feature_order:  # every feature, in order
                row = [*context.values(), 1.0]
            else:
                row = [0.0] * (len(self._features) + 1)
                row[-1] = 1.0
                index = self._feature_index
                try:
                    for key, value in context.items():
                        row[index[key]] = value
                except KeyError:
                    return self._vectorize_checked(context)
            if _PLAIN_NUMBERS.issuperset(map(type, row)):
                try:
                    total = sum(row)
                    # NaN and inf fail the first test; huge values the bounds
                    if total - total == 0.0 and -MAX_FEATURE_ABS <= min(row) and max(row) <= MAX_FEATURE_ABS:
                        return np.array(row, dtype=float)
                except OverflowError:  # an int beyond float range: the checked path names it
                    pass
        return self._vectorize_checked(context)

    def _vectorize_checked(self, context: Context) -> np.ndarray:
        if not isinstance(context, Mapping):
            raise InvalidContext(
                f"context must be a mapping of feature name to number, got {type(context).__name__}"
            )
        x = np.zeros(len(self._features) + 1)
        x[-1] = 1.0
        for key, value in context.items():
            i = self._feature_index.get(key)
            if i is None:
                raise InvalidContext(f"unknown feature {key!r}; known features: {', '.join(self._features)}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidContext(f"feature {key!r} must be a number, got {value!r}")
            if not _is_finite(value):
                raise InvalidContext(f"feature {key!r} must be finite, got {value!r}")
            if abs(value) > MAX_FEATURE_ABS:
                raise InvalidContext(
                    f"feature {key!r} is {value!r}; policies score values within ±{MAX_FEATURE_ABS:g} "
                    "(scale the feature)"
                )
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
        if (np.abs(arr) > MAX_FEATURE_ABS).any():
            row = int(np.argwhere(np.abs(arr) > MAX_FEATURE_ABS)[0][0])
            raise ValueError(f"contexts must lie within ±{MAX_FEATURE_ABS:g}; row {row} does not")
        return np.hstack([arr, np.ones((arr.shape[0], 1))])

    def probabilities(self, context: Context) -> dict[str, float]:
        """The floored probability over arms for this context, without sampling."""
        p = self._probability_row(self.vectorize(context))
        return dict(zip(self._arms, p, strict=True))

    def decide(self, context: Context) -> Decision:
        x = self.vectorize(context)
        if type(context) is dict:
            # `learn` right after with an equal context (the usual loop) reuses this vector
            self._last_context = (context, context.copy(), x)
        p = self._probability_row(x)
        i = pick(p, self._rng.random())
        return Decision(self._arms[i], dict(zip(self._arms, p, strict=True)), p[i])

    def decide_batch(self, contexts: np.ndarray) -> BatchDecision:
        """Decide for each row of an (n, d) array without learning in between."""
        x = self.vectorize_batch(contexts)
        p = self._floored(self._raw_probabilities(x))
        return BatchDecision(tuple(self._arms), pick_batch(p, self._rng.random(len(p))), p)

    def learn(self, context: Context, arm: str, reward: float, propensity: float) -> None:
        last = self._last_context
        if last is not None and last[0] is context and last[1] == context:
            x = last[2]  # validated by decide, unchanged since (equal to the copy taken then)
        else:
            x = self.vectorize(context)
        i = self._index_of(arm)
        self._check_reward_propensity(reward, propensity)
        self._learn_one(x, i, float(reward), float(propensity))

    def learn_batch(
        self,
        contexts: np.ndarray,
        arms: Sequence[str] | np.ndarray,
        rewards: np.ndarray,
        propensities: np.ndarray,
    ) -> None:
        """Apply n observations in order. `arms` are arm ids or integer indices into `self.arms`."""
        x, idx = self._rows(contexts, arms)
        n = x.shape[0]
        r = np.asarray(rewards, dtype=float)
        q = np.asarray(propensities, dtype=float)
        if r.shape != (n,) or q.shape != (n,):
            raise ValueError(f"rewards and propensities must have shape ({n},)")
        if not np.isfinite(r).all():
            raise ValueError(f"reward must be finite; row {int(np.argwhere(~np.isfinite(r))[0][0])} is not")
        bad = ~((q > 0) & (q <= 1))
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(f"propensity must be in (0, 1], got {float(q[row])!r} at row {row}")
        if n:
            self._learn_rows(x, idx, r, q)

    # ----------------------------------------------------------------- early updates
    @property
    def early_updates(self) -> bool:
        """Whether this policy learns before the deadline (the `early_updates` setting as resolved when the
        settings were built; policies without it never do). See `learn_decided_batch`."""
        return bool(getattr(self.settings, "early_updates", False))

    def start_early_updates(self) -> None:
        """Switch a policy that has learned deadline-only so far to early updates, keeping what it learned:
        its statistics are sums either way, so the decisions it enters from now on join them exactly as
        their labels would have. The caller learns early only decisions made from now on (the served
        learner's `since`). Refused where the setting is (no `early_updates`, or forgetting)."""
        if self.early_updates:
            return
        if "early_updates" not in {f.name for f in fields(self.settings)}:
            raise ValueError(f"policy {self.name!r} has no early updates")
        switched: dict[str, Any] = {"early_updates": True}  # a field of the subclass's settings
        self.settings = replace(self.settings, **switched)

    def learn_decided_batch(self, contexts: np.ndarray, arms: Sequence[str] | np.ndarray) -> None:
        """Early updates, part 1: n decisions enter the statistics when they are made, as if their reward
        were 0 (their outcome is pending). Part 2, `learn_reward_batch`, adds each reward when it is known.
        Both parts of the same rows, in any order and split in any way, leave the statistics equal to
        `learn_batch` of those rows: the policies that support early updates keep sums, and refuse the
        settings (forgetting) under which they would not."""
        if not self.early_updates:
            raise ValueError(f"policy {self.name!r} is not set up for early updates (early_updates=false)")
        x, idx = self._rows(contexts, arms)
        if len(idx):
            self._learn_decided_rows(x, idx)

    def learn_reward_batch(
        self, contexts: np.ndarray, arms: Sequence[str] | np.ndarray, rewards: np.ndarray
    ) -> None:
        """Early updates, part 2: the rewards of n decisions already entered by `learn_decided_batch` (a
        click as it arrives; at the deadline, whatever part of the final reward was not applied yet)."""
        if not self.early_updates:
            raise ValueError(f"policy {self.name!r} is not set up for early updates (early_updates=false)")
        x, idx = self._rows(contexts, arms)
        r = np.asarray(rewards, dtype=float)
        if r.shape != (len(idx),):
            raise ValueError(f"rewards must have shape ({len(idx)},)")
        if not np.isfinite(r).all():
            raise ValueError(f"reward must be finite; row {int(np.argwhere(~np.isfinite(r))[0][0])} is not")
        nonzero = r != 0.0
        if nonzero.any():
            self._learn_reward_rows(x[nonzero], idx[nonzero], r[nonzero])

    def _learn_decided_rows(self, x: np.ndarray, arms: np.ndarray) -> None:
        raise NotImplementedError(f"{self.name} has no early updates")

    def _learn_reward_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        raise NotImplementedError(f"{self.name} has no early updates")

    def _rows(self, contexts: np.ndarray, arms: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validated (n, d+1) vectors and (n,) arm indices of a batch."""
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
        return x, idx

    def add_arm(self, arm: str, features: Mapping[str, float] | None = None) -> None:
        """Add an artwork while live; it starts with no data and gets explored."""
        if not isinstance(arm, str) or not arm:
            raise ValueError(f"arm ids must be non-empty strings, got {arm!r}")
        if arm in self._arm_index:
            raise ValueError(f"arm {arm!r} already exists")
        self._arms.append(arm)
        self._arm_index[arm] = len(self._arms) - 1
        try:
            self._on_add_arm(arm, features)
        except Exception:
            # a hook that refuses (e.g. bad artwork features) must not leave the arm half-added
            self._arms.pop()
            del self._arm_index[arm]
            raise

    def reseed(self, seed: int | None) -> None:
        """Replace the random generator (API workers seed each process differently)."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self._rng = np.random.default_rng(seed)

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
        obj._feature_order = tuple(obj._features)
        obj._rng = np.random.default_rng()
        obj._last_context = None
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
        if type(reward) is float and type(propensity) is float and 0.0 < propensity <= 1.0:
            if reward - reward == 0.0:  # false for NaN and inf
                return
        if isinstance(reward, bool) or not isinstance(reward, int | float) or not _is_finite(reward):
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        if (
            isinstance(propensity, bool)
            or not isinstance(propensity, int | float)
            or not (0.0 < propensity <= 1.0)
        ):
            raise ValueError(f"propensity must be in (0, 1], got {propensity!r}")

    def _floored(self, p: np.ndarray) -> np.ndarray:
        """(n, K) -> each row mixed with uniform just enough that its smallest entry reaches the floor."""
        inv_k = 1.0 / p.shape[1]
        f = self.floor
        p_min = p.min(axis=1, keepdims=True)
        gap = inv_k - p_min
        safe_gap = np.where(gap > 0.0, gap, 1.0)
        lam = np.where(gap > 0.0, np.minimum((f - p_min) / safe_gap, 1.0), 0.0)
        return np.where(lam > 0.0, p + lam * (inv_k - p), p)

    def _floored_row(self, p: list[float]) -> list[float]:
        """`_floored` for one row of Python floats, with the same arithmetic."""
        inv_k = 1.0 / len(p)
        p_min = min(p)
        gap = inv_k - p_min
        if gap <= 0.0:
            return p
        lam = min((self.floor - p_min) / gap, 1.0)
        if lam <= 0.0:
            return p
        return [q + lam * (inv_k - q) for q in p]


def _is_finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def pick(p: Sequence[float], u: float) -> int:
    """The arm a uniform draw u in [0, 1) selects from probabilities p (inverse CDF)."""
    c = list(accumulate(p))
    return min(bisect_left(c, u * c[-1]), len(c) - 1)


def pick_batch(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """`pick` for n rows: (n, K) probabilities and (n,) uniforms -> (n,) arm indices (same arithmetic)."""
    c = np.cumsum(p, axis=1)  # sequential sums per row, exactly as `accumulate`
    return np.minimum((c < u[:, None] * c[:, -1:]).sum(axis=1), p.shape[1] - 1)


def greedy_split(scores: np.ndarray, rtol: float = 1e-12) -> np.ndarray:
    """(n, K) scores -> (n, K) probabilities putting all mass on the argmax, split equally among ties."""
    best = scores.max(axis=1, keepdims=True)
    tol = rtol * np.maximum(np.abs(best), 1.0)
    top = (scores >= best - tol).astype(float)
    return top / top.sum(axis=1, keepdims=True)


def floored_greedy_row(scores: Sequence[float], floor: float, rtol: float = 1e-12) -> list[float]:
    """`Policy._floored_row(greedy_split_row(scores))` in one pass, with the same arithmetic: the greedy
    vector's smallest entry is 0 unless every arm ties, so the floor mixes in lam = floor·K."""
    best = max(scores)
    cut = best - rtol * max(abs(best), 1.0)
    k = len(scores)
    n = sum(map(cut.__le__, scores))
    share = 1.0 / n
    if n == k:
        return [share] * k
    inv_k = 1.0 / k
    lam = min(floor / inv_k, 1.0)
    high = share + lam * (inv_k - share)
    low = lam * inv_k
    if n == 1:
        p = [low] * k
        p[scores.index(best)] = high
        return p
    return [high if s >= cut else low for s in scores]


def greedy_split_row(scores: Sequence[float], rtol: float = 1e-12) -> list[float]:
    """`greedy_split` for one row of Python floats, with the same arithmetic."""
    best = max(scores)
    cut = best - rtol * max(abs(best), 1.0)
    top = [s >= cut for s in scores]
    share = 1.0 / sum(top)
    return [share if t else 0.0 for t in top]
