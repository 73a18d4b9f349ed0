"""Coverage study of the off-policy intervals: synthetic logs with a known truth, many repetitions.

A small logistic world per cell: viewers x ~ N(0, I_d), artwork a clicked with probability
sigmoid(b0 + b_a + x·theta_a), b0 set so the mean click rate under uniform logging is the cell's rate.
Logs are uniform (propensity 1/K), as the service's explore variant logs. Two candidates:
- "always-best": deterministic (floor 0), always the artwork with the highest mean click rate;
- "personalized": 80% on the artwork a noisy copy of the true model rates best for the viewer, 20% uniform.
The truth is the candidate's population value, E_x sum_a pi(a|x) P(click|x, a), computed on 400,000 fresh
viewers (its own error is far below the intervals' widths). Each repetition draws fresh logs and runs the
service's estimators (`service.reporting.ope`) with the bounded and the normal interval; an interval
"covers" when it contains the truth. bench/ope_coverage.py prints the full table; a test runs a small one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from service.reporting import ope

ESTIMATORS = ("replay", "ips", "snips", "dr")
TARGETS = ("always-best", "personalized")
TRUTH_SAMPLE = 400_000


@dataclass(frozen=True)
class Cell:
    rate: float  # mean click rate under uniform logging
    artworks: int
    n: int
    target: str


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    truth: float
    reps: int
    # per estimator: (coverage, mean width) of the bounded and of the normal interval
    bounded: dict[str, tuple[float, float]]
    normal: dict[str, tuple[float, float]]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


class World:
    """One cell's world: per-artwork base and taste weights; click probabilities on demand."""

    def __init__(self, rate: float, artworks: int, seed: int, d: int = 4) -> None:
        rng = np.random.default_rng(seed)
        self.d, self.k = d, artworks
        self.base = rng.normal(0.0, 0.4, artworks)
        self.theta = rng.normal(0.0, 0.4, (artworks, d))
        self.noise = rng.normal(0.0, 0.3, (artworks, d))  # the personalized candidate's model error
        x = rng.normal(size=(20_000, d))
        lo, hi = -15.0, 5.0  # b0 by bisection: the mean click rate under uniform logging is `rate`
        for _ in range(40):
            self.b0 = (lo + hi) / 2
            if float(self.probabilities(x).mean()) < rate:
                lo = self.b0
            else:
                hi = self.b0

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(self.b0 + self.base + x @ self.theta.T)

    def target(self, name: str, x: np.ndarray, best: int) -> tuple[np.ndarray, float]:
        """The candidate as (top, eps): probability 1 - eps + eps/K on artwork top[i], eps/K on the others."""
        if name == "always-best":
            return np.full(len(x), best), 0.0
        scores = self.base + x @ (self.theta + self.noise).T
        return np.argmax(scores, axis=1), 0.2

    def best(self, rng: np.random.Generator) -> int:
        return int(np.argmax(self.probabilities(rng.normal(size=(20_000, self.d))).mean(axis=0)))

    def truth(self, name: str, best: int, rng: np.random.Generator) -> float:
        total = 0.0
        chunks = TRUTH_SAMPLE // 50_000
        for _ in range(chunks):
            x = rng.normal(size=(50_000, self.d))
            p = self.probabilities(x)
            top, eps = self.target(name, x, best)
            total += float(((1 - eps) * p[np.arange(len(x)), top] + eps * p.mean(axis=1)).mean())
        return total / chunks


def estimates(
    world: World, target_name: str, best: int, n: int, rng: np.random.Generator
) -> dict[str, list[ope.Estimate]]:
    """One repetition: fresh uniform logs of n events; the four estimators with each interval kind.
    DR goes through `ope.from_terms` (the path `artbandit replay` takes) with its terms computed from the
    candidate's (top, eps) form rather than an (n, K) matrix, for speed."""
    k = world.k
    x = rng.normal(size=(n, world.d))
    shown = rng.integers(0, k, n)
    p_shown = _sigmoid(world.b0 + world.base[shown] + (x * world.theta[shown]).sum(axis=1))
    reward = (rng.random(n) < p_shown).astype(float)
    propensity = np.full(n, 1.0 / k)
    top, eps = world.target(target_name, x, best)
    # replay: the candidate samples its own choice; the event counts when it equals the logged one
    chosen = np.where(rng.random(n) < eps, rng.integers(0, k, n), top)
    matched = reward[chosen == shown]
    rows = np.arange(n)
    t_shown = eps / k + (1 - eps) * (shown == top)
    q = ope.fit_predict(x, shown, reward, k)
    w = t_shown / propensity
    dr_terms = (1 - eps) * q[rows, top] + eps * q.mean(axis=1) + w * (reward - q[rows, shown])
    return {
        kind: [
            ope.replay(matched, n, interval=kind),
            ope.ips(reward, propensity, t_shown, interval=kind),
            ope.snips(reward, propensity, t_shown, interval=kind),
            ope.from_terms("dr", dr_terms, w, reward, interval=kind),
        ]
        for kind in ("bounded", "normal")
    }


def run_cell(cell: Cell, reps: int, seed: int) -> CellResult:
    rng = np.random.default_rng(seed)
    world = World(cell.rate, cell.artworks, seed)
    best = world.best(rng)
    truth = world.truth(cell.target, best, rng)
    hits = {kind: {e: 0 for e in ESTIMATORS} for kind in ("bounded", "normal")}
    widths = {kind: {e: 0.0 for e in ESTIMATORS} for kind in ("bounded", "normal")}
    for _ in range(reps):
        for kind, ests in estimates(world, cell.target, best, cell.n, rng).items():
            for est in ests:
                lo, hi = est.low, est.high
                if not (np.isfinite(lo) and np.isfinite(hi)):
                    lo, hi = -np.inf, np.inf  # no interval: counts as covering, with infinite width
                hits[kind][est.estimator] += int(lo <= truth <= hi)
                widths[kind][est.estimator] += hi - lo
    summary = {
        kind: {e: (hits[kind][e] / reps, widths[kind][e] / reps) for e in ESTIMATORS} for kind in hits
    }
    return CellResult(cell, truth, reps, summary["bounded"], summary["normal"])


def cells(
    rates: Sequence[float], artworks: Sequence[int], sizes: Sequence[int], targets: Sequence[str] = TARGETS
) -> Iterator[Cell]:
    for target in targets:
        for rate in rates:
            for k in artworks:
                for n in sizes:
                    yield Cell(rate, k, n, target)


def table(results: Sequence[CellResult]) -> str:
    """Markdown: one row per cell and estimator, bounded and normal coverage and mean width."""
    lines = [
        "| candidate | CTR | K | n | estimator | truth | coverage | mean width | normal coverage | "
        "normal width |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r.cell
        for e in ESTIMATORS:
            cov, width = r.bounded[e]
            ncov, nwidth = r.normal[e]
            lines.append(
                f"| {c.target} | {c.rate:.1%} | {c.artworks} | {c.n:,} | {e} | {r.truth:.5f} | {cov:.1%} | "
                f"{width:.5f} | {ncov:.1%} | {nwidth:.5f} |"
            )
    return "\n".join(lines)
