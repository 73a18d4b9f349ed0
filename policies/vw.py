"""Vowpal Wabbit contextual bandit (`--cb_explore_adf`) with a selectable explorer.

Each decision is one multi-line VW example: a shared example with the viewer's taste features (namespace
`u`) and one action example per artwork. VW crosses `u` with namespace group `a` (`--interactions ua`):
- an artwork with features has them in `a` (what it shows: {"horror": 1.0}), so the model learns which
  tastes like which features and has a prior for a new artwork; its id sits in `i`, not crossed, for the
  artwork's own base rate;
- an artwork without features has its id in `aid` (group `a` too, hashed apart from `a`'s features), so
  the model learns one taste vector per artwork.

Examples are not parsed per call. Names are hashed once by VW's own text parser (escaped, so any name
works; ordinary names hash exactly as in VW's text and JSON formats; like VW, all-digit names hash as
numbers, so "007" and "7" are one feature), action examples are parsed once per artwork and reused, and
one shared example is refilled from the context vector with `push_many_features`. The whole policy
(validation, floor, sampling included) decides and learns faster than bare VW parsing text each round
(`python -m tests.policies.test_vw` measures both).

VW minimizes cost: the chosen action is labelled cost = -reward with the logged propensity. VW's pmf (by
action index) goes to the base class, which floors it and samples with the policy's seeded generator; VW
gets the same seed (`--random_seed`) for bag's and cover's updates. Until an artwork has been learned from
`warmup` times it gets at least 1/K of the traffic, so a new artwork is tried fairly even when SquareCB's
greediness has grown. The defaults (squarecb, coin betting, importance weights capped at 1/clip_p = 5,
warmup 200) are those that did best on the synthetic taste world of `tests/policies/test_vw.py`.
State is VW's own `serialize()` bytes (options and VW's random state included) plus the warm-up counts;
a reloaded policy decides and learns exactly as the original, except bag and cover with the "adaptive"
optimizer, which predict identically after loading but then learn slightly differently (VW 9.9 does not
save their sub-models' normalization state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import vowpal_wabbit_next as vw

from policies.base import Policy, Settings, check_number

EXPLORERS = ("epsilon", "squarecb", "softmax", "bag", "cover")
OPTIMIZERS = ("coin", "adaptive")
_CONTEXT_NS, _ARTWORK_NS, _ID_IN_A_NS, _ID_NS = "u", "a", "aid", "i"
# Characters with a meaning in VW's text format, percent-encoded ('%' too, so the encoding is injective).
_ESCAPES = {"%": "%25", " ": "%20", "\t": "%09", "\n": "%0A", "\r": "%0D", ":": "%3A", "|": "%7C"}
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class VWSettings(Settings):
    """Each explorer reads its own parameters: epsilon (also bag's and cover's uniform share), squarecb
    (gamma_scale), softmax (softmax_lambda), bag (bag_size), cover (cover_size). learning_rate and power_t
    apply to the "adaptive" optimizer only; "coin" (coin betting) needs no learning rate. Importance
    weights are capped at 1/clip_p (0: no cap). warmup: each arm gets at least 1/K until learned from
    that many times (0: off). arm_features maps artwork id -> {feature name: number}.
    """

    explorer: str = "squarecb"
    epsilon: float = 0.05
    gamma_scale: float = 10.0
    softmax_lambda: float = 10.0
    bag_size: int = 5
    cover_size: int = 4
    optimizer: str = "coin"
    learning_rate: float = 0.5
    power_t: float = 0.5
    clip_p: float = 0.2
    warmup: int = 200
    bits: int = 18
    arm_features: Mapping[str, Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.explorer not in EXPLORERS:
            raise ValueError(f"explorer must be one of {', '.join(EXPLORERS)}, got {self.explorer!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        check_number("epsilon", self.epsilon, low=0.0, high=1.0)
        check_number("gamma_scale", self.gamma_scale, low=0.0, low_open=True)
        check_number("softmax_lambda", self.softmax_lambda, low=0.0)
        check_number("bag_size", self.bag_size, low=1, high=100, integer=True)
        check_number("cover_size", self.cover_size, low=1, high=100, integer=True)
        check_number("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_number("power_t", self.power_t, low=0.0, high=1.0)
        check_number("clip_p", self.clip_p, low=0.0, high=1.0, high_open=True)
        check_number("warmup", self.warmup, low=0, integer=True)
        check_number("bits", self.bits, low=10, high=28, integer=True)
        if self.arm_features is not None:
            if not isinstance(self.arm_features, Mapping):
                raise ValueError(f"arm_features must map artwork id to features, got {self.arm_features!r}")
            plain = {arm: check_arm_features(arm, f) for arm, f in self.arm_features.items()}
            object.__setattr__(self, "arm_features", plain)  # a plain dict keeps to_json() JSON

    def vw_args(self, seed: int) -> list[str]:
        """VW's command line for these settings."""
        explore = {
            "epsilon": ["--epsilon", repr(self.epsilon)],
            "squarecb": ["--squarecb", "--gamma_scale", repr(self.gamma_scale)],
            "softmax": ["--softmax", "--lambda", repr(self.softmax_lambda)],
            "bag": ["--bag", str(self.bag_size), "--epsilon", repr(self.epsilon)],
            "cover": ["--cover", str(self.cover_size), "--epsilon", repr(self.epsilon)],
        }[self.explorer]
        optimize = (
            ["--coin"]
            if self.optimizer == "coin"
            else ["--learning_rate", repr(self.learning_rate), "--power_t", repr(self.power_t)]
        )
        return [
            "--cb_explore_adf", *explore, *optimize,
            "--interactions", _CONTEXT_NS + _ARTWORK_NS,
            "--clip_p", repr(self.clip_p),
            "--bit_precision", str(self.bits),
            "--random_seed", str(seed),
            "--quiet",
        ]  # fmt: skip


def check_arm_features(arm: str, features: Any) -> dict[str, float]:
    """Validate one artwork's features ({name: finite number}) and return them as a plain dict."""
    if not isinstance(arm, str) or not arm:
        raise ValueError(f"arm ids must be non-empty strings, got {arm!r}")
    if not isinstance(features, Mapping):
        raise ValueError(f"features of arm {arm!r} must map feature name to number, got {features!r}")
    out = {}
    for name, value in features.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"feature names of arm {arm!r} must be non-empty strings, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"feature {name!r} of arm {arm!r} must be a finite number, got {value!r}")
        if abs(value) > _F32_MAX:
            raise ValueError(f"feature {name!r} of arm {arm!r} must be within float32 range, got {value!r}")
        out[name] = float(value)
    return out


def _escape(name: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in name)


class _Examples:
    """One VW workspace and its reusable examples: a shared example and one action example per arm.

    Calls go to the workspace's `_core` object with `_core` examples. That skips vowpal-wabbit-next's
    per-call label-type check (a fifth of the time per round; our examples are labelled correctly by
    construction) and relies on its internals, which is safe while the version is pinned (==0.7.0).
    """

    def __init__(self, ws: vw.Workspace, context_features: Sequence[str]) -> None:
        self.ws = ws
        self._core = ws._workspace
        self._parser = vw.TextFormatParser(ws)
        self._no_label = vw.CBLabel()
        names = " ".join(_escape(f) for f in context_features)
        hashed = self._parser.parse_line(f"|{_CONTEXT_NS} {names}")[_CONTEXT_NS].indices if names else []
        if len(hashed) != len(context_features):
            raise RuntimeError(f"VW hashed {len(hashed)} context features, expected {len(context_features)}")
        self._hashes = np.array(hashed, dtype=np.uint64)
        shared = vw.Example()
        shared.set_label(vw.CBLabel(shared=True))
        self._context = shared[_CONTEXT_NS]
        self._batch = [shared._example]  # the multi-line example: shared first, then the actions

    def add_action(self, arm: str, features: Mapping[str, float] | None) -> None:
        pairs = " ".join(f"{_escape(k)}:{v!r}" for k, v in (features or {}).items())
        if pairs:
            line = f"|{_ARTWORK_NS} {pairs} |{_ID_NS} {_escape(arm)}"
        else:
            line = f"|{_ID_IN_A_NS} {_escape(arm)}"
        self._batch.append(self._parser.parse_line(line)._example)

    def remove_action(self, index: int) -> None:
        del self._batch[1 + index]

    def predict(self, values: np.ndarray) -> list[tuple[int, float]]:
        """VW's pmf for one context (float32 values in context-feature order) as (action, probability)."""
        self._set_context(values)
        return cast(list[tuple[int, float]], self._core.predict_multi_ex_one(self._batch))

    def learn(self, values: np.ndarray, action: int, cost: float, probability: float) -> None:
        self._set_context(values)
        example = self._batch[1 + action]
        example._set_label(vw.CBLabel(label=(cost, probability)))
        try:
            self._core.learn_multi_ex_one(self._batch)
        finally:
            example._set_label(self._no_label)

    def _set_context(self, values: np.ndarray) -> None:
        nz = values != 0
        self._context.truncate_to(0)
        self._context.push_many_features(self._hashes[nz], values[nz])


class VowpalWabbit(Policy):
    name = "vw"
    settings_class = VWSettings
    settings: VWSettings

    def __init__(
        self, arms: Sequence[str], features: Sequence[str], seed: int | None = None, **params: Any
    ) -> None:
        self._seed = seed  # read by _init_state: VW gets the same seed
        super().__init__(arms, features, seed, **params)

    @property
    def vw_model(self) -> bytes:
        """The VW model alone, loadable by VW itself (`vw -i`), e.g. to replay DSJSON logs."""
        return self._vw.ws.serialize()

    def add_arm(self, arm: str, features: Mapping[str, float] | None = None) -> None:
        if features is not None:
            check_arm_features(arm, features)  # before the base class records the arm
        super().add_arm(arm, features)

    # ----------------------------------------------------------------- hooks
    def _init_state(self) -> None:
        given = self.settings.arm_features or {}
        unknown = sorted(set(given) - set(self._arms))
        if unknown:
            raise ValueError(f"arm_features names unknown arms {unknown}; arms: {', '.join(self._arms)}")
        self._arm_features = {a: dict(given[a]) for a in self._arms if a in given}
        self._trials = [0] * len(self._arms)
        seed = self._seed if self._seed is not None else int(self._rng.integers(2**31))
        self._attach(vw.Workspace(self.settings.vw_args(seed)))

    def _raw_probabilities(self, x: np.ndarray) -> np.ndarray:
        return np.array([self._raw_probability_row(row) for row in x], dtype=float).reshape(len(x), -1)

    def _raw_probability_row(self, x: np.ndarray) -> list[float]:
        p = [0.0] * len(self._arms)
        for action, prob in self._vw.predict(x[:-1].astype(np.float32)):
            p[action] = prob
        total = math.fsum(p)
        if not math.isfinite(total) or total <= 0.0:
            raise RuntimeError(f"VW returned an invalid pmf {p}; the model has diverged")
        return self._warm([q / total for q in p])

    def _warm(self, p: list[float]) -> list[float]:
        """Lift every arm learned from fewer than `warmup` times to at least 1/K, by mixing p with the
        uniform distribution over those arms just enough."""
        warming = [i for i, t in enumerate(self._trials) if t < self.settings.warmup]
        if not warming:
            return p
        inv_k, inv_w = 1.0 / len(p), 1.0 / len(warming)
        lam = min(max((inv_k - p[i]) / (inv_w - p[i]) if p[i] < inv_k else 0.0 for i in warming), 1.0)
        if lam <= 0.0:
            return p
        q = [(1.0 - lam) * v for v in p]
        for i in warming:
            q[i] += lam * inv_w
        return q

    def _learn_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray, props: np.ndarray) -> None:
        _check_float32(rewards)  # every row before any: a rejected batch changes nothing
        for row, arm, reward, prob in zip(x, arms.tolist(), rewards.tolist(), props.tolist(), strict=True):
            self._apply(row, arm, reward, prob)

    def _learn_one(self, x: np.ndarray, arm: int, reward: float, propensity: float) -> None:
        _check_float32(np.array([reward]))
        self._apply(x, arm, reward, propensity)

    def _apply(self, x: np.ndarray, arm: int, reward: float, propensity: float) -> None:
        self._vw.learn(x[:-1].astype(np.float32), arm, -reward, propensity)
        self._trials[arm] += 1

    def _on_add_arm(self, arm: str, arm_features: Mapping[str, float] | None) -> None:
        if arm_features is not None:
            self._arm_features[arm] = check_arm_features(arm, arm_features)
        self._vw.add_action(arm, self._arm_features.get(arm))
        self._trials.append(0)

    def _on_remove_arm(self, index: int) -> None:
        self._vw.remove_action(index)
        del self._trials[index]
        self._arm_features = {a: f for a, f in self._arm_features.items() if a in self._arm_index}

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {
            "vw_model": np.frombuffer(self._vw.ws.serialize(), dtype=np.uint8),
            "trials": np.array(self._trials, dtype=np.int64),
        }

    def _state_json(self) -> dict[str, Any]:
        return {"arm_features": self._arm_features}

    def _load_state(self, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._arm_features = {a: dict(f) for a, f in meta["arm_features"].items()}
        self._trials = [int(t) for t in arrays["trials"]]
        # The model stores its options and VW's random state; passing the options again would clash.
        self._attach(vw.Workspace(["--quiet"], model_data=arrays["vw_model"].tobytes()))

    def _attach(self, ws: vw.Workspace) -> None:
        self._vw = _Examples(ws, self._features)
        for arm in self._arms:
            self._vw.add_action(arm, self._arm_features.get(arm))


def _check_float32(rewards: np.ndarray) -> None:
    """VW computes in float32: finite rewards beyond its range would become inf inside the model.
    (Context values need no check here: `Policy.vectorize` bounds them by MAX_FEATURE_ABS, well inside.)"""
    if rewards.size and np.abs(rewards).max() > _F32_MAX:
        raise ValueError(f"reward must be within float32 range (|reward| <= {_F32_MAX:.3g})")
