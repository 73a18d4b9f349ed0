"""Off-policy estimators on arrays: replay, IPS, SNIPS and doubly robust, each with a 95% interval.

Notation for n logged events: r the reward, mu the logging probability of the shown artwork (the logged
propensity), pi(a|x) the target policy's probability of artwork a, w = pi(shown|x) / mu the importance
weight, q(x, a) a reward model's prediction.

- replay (Li et al. 2011; unbiased only for uniform logs): the mean reward over the events where the
  target would have shown the logged artwork.
- IPS: mean(w r). Unbiased given correct propensities.
- SNIPS: sum(w r) / sum(w). Slightly biased, much lower variance.
- DR: mean(sum_a pi(a|x) q(x, a) + w (r - q(x, shown))). Unbiased for any q fitted on other data
  (cross-fitting below); lower variance when q is good.

Intervals (`interval="bounded"`, the default): an effective-count binomial interval joined with the normal
one and clipped to the reward's bounds [0, max(1, largest reward)] — see `service.reporting.intervals` for
the method and bench/ope_coverage.py for its coverage at 0.3–5% click rates. `interval="normal"` gives the
plain normal (delta-method for SNIPS) interval, kept for comparison; it is also what negative rewards get
(the bounded interval assumes rewards >= 0). The target may be deterministic (probability 0 for most
artworks); the logged propensities must be > 0.

Effective sample size: (sum w)^2 / sum w^2 for the weighted estimators, the number of matches for replay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.reporting import intervals
from service.reporting.stats import Z95
from service.store.records import LabelledEvent


class LogsError(ValueError):
    """Logs that cannot be evaluated, with the reason (and row/column where there is one)."""


@dataclass(frozen=True)
class LoggedData:
    """n logged decisions in log order. `probabilities[i, j]` is the logging probability of
    `artworks[j]` in event i (NaN: not offered), when the logs carry full probabilities."""

    title: np.ndarray  # (n,) str
    features: list[str]
    contexts: np.ndarray  # (n, d)
    artwork: np.ndarray  # (n,) str, the shown artwork
    reward: np.ndarray  # (n,)
    propensity: np.ndarray  # (n,)
    artworks: list[str]  # every artwork the logs mention
    probabilities: np.ndarray | None = None  # (n, len(artworks))

    @classmethod
    def from_events(cls, events: Sequence[LabelledEvent], features: Sequence[str]) -> LoggedData:
        """A title's labelled events (the service's learning stream) as arrays; contexts in `features`
        order, a feature an event lacks counts as 0, as at decision time. No logging probabilities."""
        names = list(features)
        contexts = np.array(
            [[float(e.context.get(f, 0.0)) for f in names] for e in events], dtype=float
        ).reshape(len(events), len(names))
        shown = [e.artwork_id for e in events]
        return cls(
            title=np.array([e.title_id for e in events], dtype=object),
            features=names,
            contexts=contexts,
            artwork=np.array(shown, dtype=object),
            reward=np.array([e.reward for e in events], dtype=float),
            propensity=np.array([e.propensity for e in events], dtype=float),
            artworks=list(dict.fromkeys(shown)),
        )

    def __len__(self) -> int:
        return len(self.reward)

    def titles(self) -> list[str]:
        return list(dict.fromkeys(self.title.tolist()))

    def title_artworks(self, title: str) -> list[str]:
        """The title's artworks in order of first appearance (offered ones when probabilities are known)."""
        rows = self.title == title
        if self.probabilities is not None:
            offered = ~np.isnan(self.probabilities[rows])
            firsts = [
                (int(np.argmax(offered[:, j])), j) for j in range(len(self.artworks)) if offered[:, j].any()
            ]
            return [self.artworks[j] for _, j in sorted(firsts)]
        return list(dict.fromkeys(self.artwork[rows].tolist()))


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    low: float
    high: float
    ess: float
    n: int

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high

    def as_row(self) -> dict[str, float | str | int]:
        return {
            "estimator": self.estimator, "value": self.value, "ci_low": self.low, "ci_high": self.high,
            "ess": self.ess, "n": self.n,
        }  # fmt: skip


def _check(rewards: np.ndarray, propensities: np.ndarray, target: np.ndarray) -> None:
    n = len(rewards)
    if n < 2:
        raise ValueError(f"need at least 2 logged events, got {n}")
    if propensities.shape != (n,) or target.shape != (n,):
        raise ValueError(f"rewards, propensities and target probabilities must all have shape ({n},)")
    bad = ~((propensities > 0) & (propensities <= 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"propensity must be in (0, 1], got {float(propensities[row])!r} at row {row}")


def _ess(w: np.ndarray) -> float:
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


INTERVALS = ("bounded", "normal")


def _z(confidence: float, interval: str) -> float:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    return Z95 if confidence == 0.95 else intervals.z_value(confidence)


def _normal(
    name: str,
    terms: np.ndarray,
    ess: float,
    scale: float = 1.0,
    center: float | None = None,
    z: float = Z95,
) -> Estimate:
    n = len(terms)
    value = float(terms.mean()) if center is None else center
    se = float(terms.std(ddof=1)) / math.sqrt(n) / scale if n > 1 else math.inf
    return Estimate(name, value, value - z * se, value + z * se, ess, n)


def _reward_max(rewards: np.ndarray | None) -> float | None:
    """The upper bound of the reward scale, max(1, largest reward); None when a reward is negative (the
    bounded intervals assume rewards >= 0; such logs get the normal interval)."""
    if rewards is None or len(rewards) == 0:
        return 1.0
    if float(np.min(rewards)) < 0:
        return None
    return max(1.0, float(np.max(rewards)))


def _joined(normal: Estimate, bounded: tuple[float, float], r_max: float) -> Estimate:
    """The bounded interval joined with the normal one, clipped to [0, r_max]."""
    lo = min(bounded[0], normal.low) if math.isfinite(normal.low) else bounded[0]
    hi = max(bounded[1], normal.high) if math.isfinite(normal.high) else bounded[1]
    return Estimate(
        normal.estimator, normal.value, min(max(lo, 0.0), r_max), min(max(hi, 0.0), r_max), normal.ess,
        normal.n,
    )  # fmt: skip


def _weighted(
    name: str,
    terms: np.ndarray,
    w: np.ndarray,
    rewards: np.ndarray | None,
    confidence: float,
    interval: str,
) -> Estimate:
    """IPS and DR: the mean of `terms`, with the effective-count interval of a proportion out of n scaled
    by c = second moment / mean of the weights (the larger of: over clicks, over all events)."""
    z = _z(confidence, interval)
    normal = _normal(name, terms, _ess(w), z=z)
    r_max = _reward_max(rewards)
    if interval == "normal" or r_max is None:
        return normal
    n = len(terms)
    total_w = float(w.sum())
    if total_w <= 0:  # the target never agrees with the log: nothing is known about its reward
        return Estimate(name, normal.value, 0.0, r_max, 0.0, n)
    c = float((w * w).sum()) / total_w
    if rewards is not None:
        wr = float((w * rewards).sum())
        if wr > 0:
            c = max(c, float((w * w * rewards).sum()) / wr)
    scale = c * r_max
    value = min(max(normal.value, 0.0), scale)
    return _joined(normal, intervals.scaled_rate_interval(value, n, scale, confidence), r_max)


def from_terms(
    name: str,
    terms: np.ndarray,
    weights: np.ndarray,
    rewards: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    interval: str = "bounded",
) -> Estimate:
    """An estimate that is the mean of per-event `terms` (IPS- or DR-like, importance `weights`); pass the
    logged `rewards` for the bounded interval's reward scale and weight moment (else rewards in [0, 1])."""
    return _weighted(name, np.asarray(terms, dtype=float), weights, rewards, confidence, interval)


def ips(
    rewards: np.ndarray,
    propensities: np.ndarray,
    target_shown: np.ndarray,
    *,
    confidence: float = 0.95,
    interval: str = "bounded",
) -> Estimate:
    """`target_shown`: the target's probability of the artwork that was shown, per event."""
    _check(rewards, propensities, target_shown)
    w = target_shown / propensities
    return _weighted("ips", w * rewards, w, rewards, confidence, interval)


def snips(
    rewards: np.ndarray,
    propensities: np.ndarray,
    target_shown: np.ndarray,
    *,
    confidence: float = 0.95,
    interval: str = "bounded",
) -> Estimate:
    _check(rewards, propensities, target_shown)
    z = _z(confidence, interval)
    w = target_shown / propensities
    total = float(w.sum())
    if total <= 0:
        return Estimate("snips", math.nan, math.nan, math.nan, 0.0, len(w))
    value = float((w * rewards).sum()) / total
    ess = _ess(w)
    normal = _normal("snips", w * (rewards - value), ess, scale=total / len(w), center=value, z=z)
    r_max = _reward_max(rewards)
    if interval == "normal" or r_max is None:
        return normal
    bounded = intervals.scaled_rate_interval(min(max(value, 0.0), r_max), ess, r_max, confidence)
    return _joined(normal, bounded, r_max)


def doubly_robust(
    rewards: np.ndarray,
    propensities: np.ndarray,
    target: np.ndarray,
    shown: np.ndarray,
    predictions: np.ndarray,
    *,
    confidence: float = 0.95,
    interval: str = "bounded",
) -> Estimate:
    """`target` and `predictions` are (n, K); `shown` holds the column index of the shown artwork."""
    rows = np.arange(len(rewards))
    target_shown = target[rows, shown]
    _check(rewards, propensities, target_shown)
    w = target_shown / propensities
    terms = (target * predictions).sum(axis=1) + w * (rewards - predictions[rows, shown])
    return _weighted("dr", terms, w, rewards, confidence, interval)


def replay(
    matched_rewards: np.ndarray, n: int, *, confidence: float = 0.95, interval: str = "bounded"
) -> Estimate:
    """Mean reward of the `matched_rewards` (events where the target agreed with the log) out of n events.
    No matches: no value and an unbounded interval."""
    z = _z(confidence, interval)
    r = np.asarray(matched_rewards, dtype=float)
    m = len(r)
    r_max = _reward_max(r)
    if m == 0 or (m < 2 and (interval == "normal" or r_max is None)):
        return Estimate("replay", math.nan if m == 0 else float(r[0]), -math.inf, math.inf, m, n)
    value = float(r.mean())
    if m >= 2:
        e = _normal("replay", r, float(m), z=z)
        normal = Estimate("replay", value, e.low, e.high, float(m), n)
    else:
        normal = Estimate("replay", value, math.nan, math.nan, float(m), n)
    if interval == "normal" or r_max is None:
        return normal
    bounded = intervals.scaled_rate_interval(value, m, r_max, confidence)
    return _joined(normal, bounded, r_max)


def fit_predict(
    contexts: np.ndarray,
    shown: np.ndarray,
    rewards: np.ndarray,
    n_arms: int,
    ridge: float = 1.0,
    folds: int = 2,
) -> np.ndarray:
    """Cross-fitted reward model: per-artwork ridge regression on the context (plus a bias term).

    Events are split into `folds` interleaved folds; each fold is predicted by a model fitted on the others,
    so no event's own reward leaks into its prediction. Predictions are clipped to [0, 1]. Returns (n, K).
    """
    n = len(rewards)
    x = np.hstack([contexts, np.ones((n, 1))])
    fold = np.arange(n) % folds
    out = np.empty((n, n_arms))
    eye = ridge * np.eye(x.shape[1])
    for f in range(folds):
        train, test = fold != f, fold == f
        if not train.any():  # a single fold: fit and predict on everything
            train = test
        prior = float(rewards[train].mean()) if train.any() else 0.0
        xt, st, rt = x[train], shown[train], rewards[train] - prior
        order = np.argsort(st, kind="stable")  # each artwork's rows, in log order, as one slice
        bounds = np.searchsorted(st[order], np.arange(n_arms + 1))
        theta = np.empty((x.shape[1], n_arms))
        for k in range(n_arms):
            rows = order[bounds[k] : bounds[k + 1]]
            xk, rk = xt[rows], rt[rows]
            theta[:, k] = np.linalg.solve(eye + xk.T @ xk, xk.T @ rk)
        out[test] = x[test] @ theta + prior
    return np.clip(out, 0.0, 1.0, out=out)
