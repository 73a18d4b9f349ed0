"""Logged decisions drawn from a world with a known, frozen logging policy, plus the ground truth.

Used to check the off-policy estimators against the truth and to try `artbandit replay` without a
service: the reward is the click itself (no attribution window), so the true value of any target policy
is the mean over events of sum_a pi(a|x) P(click | x, a).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from policies import Policy
from service.reporting.ope import LoggedData
from simulator.traffic import Impressions, Traffic
from simulator.world import World


@dataclass(frozen=True)
class SyntheticLogs:
    data: LoggedData
    click_probability: np.ndarray  # (n, len(data.artworks)) true click probability, NaN where not offered

    def true_value(self, target: np.ndarray) -> float:
        """Mean reward of a target with probabilities `target` (n, len(data.artworks)) on these events."""
        return float(np.nansum(target * self.click_probability, axis=1).mean())


def simulate_logs(world: World, logging: Callable[[int], Policy], n: int, seed: int) -> SyntheticLogs:
    """n events of the world's traffic for `seed`; `logging(title_index)` gives each title's frozen policy
    (its arms must be the title's artworks)."""
    imp = Impressions.concat(list(Traffic(world, seed, n).chunks()))
    truth = world.truth(imp.title, imp.viewer, imp.time, imp.views)
    n_art = len(world.artwork_ids)
    probabilities = np.full((n, n_art), np.nan)
    click_probability = np.full((n, n_art), np.nan)
    shown = np.empty(n, dtype=np.int64)
    index = {a: g for g, a in enumerate(world.artwork_ids)}
    for t in np.unique(imp.title).tolist():
        rows = np.flatnonzero(imp.title == t)
        policy = logging(t)
        cols = np.array([index[a] for a in policy.arms], dtype=np.int64)
        decision = policy.decide_batch(imp.context[rows])
        probabilities[np.ix_(rows, cols)] = decision.probabilities
        shown[rows] = cols[decision.chosen]
        slots = world.slots[t]
        valid = slots >= 0
        click_probability[np.ix_(rows, slots[valid])] = truth.probabilities[rows][:, valid]
    p_shown = click_probability[np.arange(n), shown]
    reward = (imp.luck < p_shown).astype(float)
    data = LoggedData(
        title=np.array([world.title_ids[t] for t in imp.title.tolist()], dtype=object),
        features=list(world.feature_names),
        contexts=imp.context,
        artwork=np.array([world.artwork_ids[g] for g in shown.tolist()], dtype=object),
        reward=reward,
        propensity=probabilities[np.arange(n), shown],
        artworks=list(world.artwork_ids),
        probabilities=probabilities,
    )
    offered = ~np.isnan(probabilities)
    return SyntheticLogs(data, np.where(offered, click_probability, np.nan))
