"""Off-policy estimators on arrays: replay, IPS, SNIPS and doubly robust, each with a 95% interval.

Notation for n logged events: r the reward, mu the logging probability of the shown artwork (the logged
propensity), pi(a|x) the target policy's probability of artwork a, w = pi(shown|x) / mu the importance
weight, q(x, a) a reward model's prediction.

- replay (Li et al. 2011; unbiased only for uniform logs): the mean reward over the events where the
  target would have shown the logged artwork. Interval: normal, on the matched rewards.
- IPS: mean(w r). Unbiased given correct propensities. Interval: normal, on the terms w r.
- SNIPS: sum(w r) / sum(w). Slightly biased, much lower variance. Interval: delta method.
- DR: mean(sum_a pi(a|x) q(x, a) + w (r - q(x, shown))). Unbiased for any q fitted on other data
  (cross-fitting below); lower variance when q is good. Interval: normal, on the terms.

Effective sample size: (sum w)^2 / sum w^2 for the weighted estimators, the number of matches for replay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.reporting.stats import Z95
from service.store.records import LabelledEvent


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


def _normal(
    name: str, terms: np.ndarray, ess: float, scale: float = 1.0, center: float | None = None
) -> Estimate:
    n = len(terms)
    value = float(terms.mean()) if center is None else center
    se = float(terms.std(ddof=1)) / math.sqrt(n) / scale if n > 1 else math.inf
    return Estimate(name, value, value - Z95 * se, value + Z95 * se, ess, n)


def from_terms(name: str, terms: np.ndarray, weights: np.ndarray) -> Estimate:
    """An estimate that is the mean of per-event `terms`, with importance `weights` for the ESS."""
    return _normal(name, terms, _ess(weights))


def ips(rewards: np.ndarray, propensities: np.ndarray, target_shown: np.ndarray) -> Estimate:
    """`target_shown`: the target's probability of the artwork that was shown, per event."""
    _check(rewards, propensities, target_shown)
    w = target_shown / propensities
    return _normal("ips", w * rewards, _ess(w))


def snips(rewards: np.ndarray, propensities: np.ndarray, target_shown: np.ndarray) -> Estimate:
    _check(rewards, propensities, target_shown)
    w = target_shown / propensities
    total = float(w.sum())
    if total <= 0:
        return Estimate("snips", math.nan, math.nan, math.nan, 0.0, len(w))
    value = float((w * rewards).sum()) / total
    return _normal("snips", w * (rewards - value), _ess(w), scale=total / len(w), center=value)


def doubly_robust(
    rewards: np.ndarray,
    propensities: np.ndarray,
    target: np.ndarray,
    shown: np.ndarray,
    predictions: np.ndarray,
) -> Estimate:
    """`target` and `predictions` are (n, K); `shown` holds the column index of the shown artwork."""
    rows = np.arange(len(rewards))
    target_shown = target[rows, shown]
    _check(rewards, propensities, target_shown)
    w = target_shown / propensities
    terms = (target * predictions).sum(axis=1) + w * (rewards - predictions[rows, shown])
    return _normal("dr", terms, _ess(w))


def replay(matched_rewards: np.ndarray, n: int) -> Estimate:
    """Mean reward of the `matched_rewards` (events where the target agreed with the log) out of n events."""
    m = len(matched_rewards)
    if m < 2:
        return Estimate(
            "replay", math.nan if m == 0 else float(matched_rewards[0]), -math.inf, math.inf, m, n
        )
    e = _normal("replay", np.asarray(matched_rewards, dtype=float), float(m))
    return Estimate("replay", e.value, e.low, e.high, float(m), n)


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
        for k in range(n_arms):
            rows = train & (shown == k)
            xk, rk = x[rows], rewards[rows] - prior
            theta = np.linalg.solve(eye + xk.T @ xk, xk.T @ rk)
            out[test, k] = x[test] @ theta + prior
    return np.clip(out, 0.0, 1.0)
