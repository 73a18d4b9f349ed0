"""Evaluate a candidate policy on logged decisions: replay, IPS, SNIPS and DR with 95% intervals.

Used by `artbandit replay`/`tune` (simulator/cli.py) and by the dashboard's off-policy panel, which tunes
on the explore variant's logs (service.reporting.tuning); `simulator.replay` re-exports it.

The candidate is a real policy from `policies.create_policy`, one per title, over the artworks that title's
logs show, and it learns as it goes (progressive validation), in blocks of `block` events:
- replay (Li et al. 2011): the candidate picks for each event; when it picks the logged artwork the event
  counts and the candidate learns from it, otherwise the event is skipped;
- IPS/SNIPS/DR: the candidate's probabilities for each event are taken before it learns from that event;
  it then learns from every logged event (with the logged propensity).
A non-learning candidate (uniform, fixed) is simply evaluated. When the logs carry full probabilities,
the candidate is restricted to the artworks offered in each event (renormalized), as the service would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policies import Policy, create_policy
from service.reporting import ope
from service.reporting.ope import LoggedData, LogsError


@dataclass
class Evaluation:
    policy: str
    params: dict[str, Any]
    estimates: list[ope.Estimate]
    logged_value: float  # the mean reward of the logging policy
    n: int
    uniform_logs: bool
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"{'estimator':<9} {'value':>9} {'95% interval':>23} {'ESS':>10}"]
        for e in self.estimates:
            interval = f"[{e.low:.5f}, {e.high:.5f}]"
            lines.append(f"{e.estimator:<9} {e.value:>9.5f} {interval:>23} {e.ess:>10.1f}")
        lines.append(
            f"{'logged':<9} {self.logged_value:>9.5f}   (the logging policy's own mean reward, n={self.n})"
        )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _offered_mask(logs: LoggedData, rows: np.ndarray, arms: Sequence[str]) -> np.ndarray | None:
    if logs.probabilities is None:
        return None
    index = {a: j for j, a in enumerate(logs.artworks)}
    cols = np.array([index[a] for a in arms], dtype=np.int64)
    return ~np.isnan(logs.probabilities[np.ix_(rows, cols)])


Factory = Callable[[str, list[str], list[str], int], Policy]  # (title, arms, features, seed) -> policy


def registry_factory(policy: str, params: Mapping[str, Any] | None = None) -> Factory:
    """A factory building the named policy from the registry with these parameters."""
    params = dict(params or {})

    def make(title: str, arms: list[str], features: list[str], seed: int) -> Policy:
        return create_policy(policy, arms, features, seed, **params)

    return make


def evaluate(
    logs: LoggedData,
    policy: str,
    params: Mapping[str, Any] | None = None,
    *,
    arms: Sequence[str] | None = None,
    block: int = 1,
    seed: int = 1,
    learn: bool = True,
    factory: Factory | None = None,
    confidence: float = 0.95,
) -> Evaluation:
    """Estimate the candidate's mean reward on `logs`. `arms` restricts/orders the candidate's artworks
    (every one must appear in the logs). `factory` replaces the registry (e.g. a frozen, trained policy:
    then pass learn=False); `policy` then only names it in the report. `confidence`: of the intervals."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    params = dict(params or {})
    make = factory or registry_factory(policy, params)
    notes: list[str] = []
    n = len(logs)
    target_shown = np.empty(n)
    match_rewards: list[np.ndarray] = []
    dr_terms = np.empty(n)
    weights = np.empty(n)
    for t_index, title in enumerate(logs.titles()):
        rows = np.flatnonzero(logs.title == title)
        shown = set(logs.artwork[rows].tolist())
        title_arms = list(arms) if arms is not None else [a for a in logs.title_artworks(title) if a in shown]
        unseen = [a for a in title_arms if a not in shown]
        if unseen:
            raise LogsError(
                f"title {title!r}: the candidate needs artwork(s) the logs never show ({', '.join(unseen)}); "
                "logged data says nothing about how viewers respond to them"
            )
        outside = sorted(set(logs.artwork[rows].tolist()) - set(title_arms))
        keep = rows if not outside else rows[~np.isin(logs.artwork[rows], outside)]
        if outside:
            notes.append(
                f"title {title!r}: left out {len(rows) - len(keep)} events showing artworks outside --arms"
            )
        try:
            candidate = make(title, title_arms, logs.features, seed + 2 * t_index)
            replayer = make(title, title_arms, logs.features, seed + 2 * t_index + 1)
        except ValueError as exc:
            raise LogsError(
                f"title {title!r}: cannot build candidate {policy!r} on the logged artworks: {exc}"
            ) from exc
        pieces = _title_terms(logs, keep, title_arms, candidate, replayer, block, learn)
        target_shown[keep], dr_terms[keep], weights[keep] = pieces[0], pieces[1], pieces[2]
        match_rewards.append(pieces[3])
        if len(keep) < len(rows):
            target_shown[np.setdiff1d(rows, keep)] = np.nan
    used = ~np.isnan(target_shown)
    r, q = logs.reward[used], logs.propensity[used]
    estimates = [
        ope.replay(np.concatenate(match_rewards), int(used.sum()), confidence=confidence),
        ope.ips(r, q, target_shown[used], confidence=confidence),
        ope.snips(r, q, target_shown[used], confidence=confidence),
        ope.from_terms("dr", dr_terms[used], weights[used], r, confidence=confidence),
    ]
    uniform = _looks_uniform(logs)
    if not uniform:
        notes.append("the logs are not uniform: replay is biased here; trust IPS/SNIPS/DR")
    return Evaluation(policy, params, estimates, float(logs.reward.mean()), n, uniform, notes)


def _title_terms(
    logs: LoggedData,
    rows: np.ndarray,
    arms: list[str],
    candidate: Policy,
    replayer: Policy,
    block: int,
    learn: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    index = {a: j for j, a in enumerate(arms)}
    x = logs.contexts[rows]
    shown = np.array([index[a] for a in logs.artwork[rows].tolist()], dtype=np.int64)
    r, q = logs.reward[rows], logs.propensity[rows]
    offered = _offered_mask(logs, rows, arms)
    predictions = ope.fit_predict(x, shown, r, len(arms))
    # column j of our arrays is arms[j]; the candidate may keep its arms in another order
    c_of = _positions(candidate, arms)
    r_of = _positions(replayer, arms)
    r_back = np.argsort(r_of)
    target = np.empty((len(rows), len(arms)))
    matched: list[np.ndarray] = []
    if not learn:  # a frozen candidate decides the same in one block
        block = max(len(rows), 1)
    for start in range(0, len(rows), block):
        sl = slice(start, min(start + block, len(rows)))
        probs = candidate.decide_batch(x[sl]).probabilities[:, c_of]
        pick = replayer.decide_batch(x[sl])
        chosen = r_back[pick.chosen]
        if offered is not None:
            probs = _restrict(probs, offered[sl])
            chosen = _resample_offered(pick.probabilities[:, r_of], offered[sl], chosen)
        target[sl] = probs
        hit = chosen == shown[sl]
        matched.append(r[sl][hit])
        if not learn:
            continue
        candidate.learn_batch(x[sl], c_of[shown[sl]], r[sl], q[sl])
        if hit.any():
            replayer.learn_batch(x[sl][hit], r_of[shown[sl][hit]], r[sl][hit], q[sl][hit])
    rr = np.arange(len(rows))
    t_shown = target[rr, shown]
    w = t_shown / q
    dr = (target * predictions).sum(axis=1) + w * (r - predictions[rr, shown])
    return t_shown, dr, w, np.concatenate(matched) if matched else np.empty(0)


def _positions(policy: Policy, arms: list[str]) -> np.ndarray:
    """Index in `policy.arms` of each of `arms`; the candidate must have exactly these artworks."""
    have = policy.arms
    if sorted(have) != sorted(arms):
        raise LogsError(f"the candidate's artworks {have} differ from the logged artworks {arms}")
    return np.array([have.index(a) for a in arms], dtype=np.int64)


def _restrict(p: np.ndarray, offered: np.ndarray) -> np.ndarray:
    masked = np.where(offered, p, 0.0)
    total = masked.sum(axis=1, keepdims=True)
    return np.where(
        total > 0, masked / np.where(total > 0, total, 1.0), offered / offered.sum(axis=1, keepdims=True)
    )


def _resample_offered(p: np.ndarray, offered: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Keep the candidate's pick when it was offered; otherwise take the offered artwork it rates highest."""
    ok = offered[np.arange(len(chosen)), chosen]
    if ok.all():
        return chosen
    best = np.argmax(np.where(offered, p, -1.0), axis=1)
    return np.where(ok, chosen, best)


def _looks_uniform(logs: LoggedData) -> bool:
    if logs.probabilities is not None:
        p = logs.probabilities
        offered = ~np.isnan(p)
        expected = 1.0 / offered.sum(axis=1, keepdims=True)
        return bool(np.all(np.where(offered, np.abs(p - expected) < 1e-6, True)))
    return bool(np.ptp(logs.propensity) < 1e-9)
