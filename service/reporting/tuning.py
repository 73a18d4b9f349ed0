"""Offline tuning with a safe gate: `artbandit tune LOGS --policy linucb --grid alpha=0.1,0.3,1,3`, and the
dashboard's off-policy panel (best setting on the explore variant's logs).

Every setting of the grid (the cartesian product of the `--grid` lists) is evaluated on the logs by
`simulator.replay.evaluate` — progressive validation, doubly robust (DR) estimate with its bounded interval.
A setting is RECOMMENDED only when its DR lower bound beats the logging policy's observed value (its mean
reward on the same events); among those that pass, the one with the highest DR estimate. Trying many
settings and keeping the best is a multiple comparison, so each interval has confidence 1 - alpha/G for G
settings (Bonferroni): the chance that ANY setting passes the gate while none truly beats the logging
policy stays below alpha (about; the logged value is itself an estimate, see docs/api.md). When none
passes, nothing is recommended — "keep what you have" is a valid answer, and the usual one on small logs.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.reporting.evaluate import evaluate
from service.reporting.ope import LoggedData

ALPHA = 0.05


@dataclass(frozen=True)
class Setting:
    params: dict[str, Any]
    value: float  # DR estimate
    low: float
    high: float
    ess: float
    passes: bool  # low > the logged value

    def as_row(self) -> dict[str, Any]:
        return {
            "params": self.params, "dr": self.value, "ci_low": self.low, "ci_high": self.high,
            "ess": self.ess, "passes_gate": self.passes,
        }  # fmt: skip


@dataclass(frozen=True)
class TuneResult:
    policy: str
    n: int
    logged_value: float
    confidence: float  # of each setting's interval (Bonferroni-adjusted)
    settings: list[Setting]
    recommended: Setting | None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "n": self.n, "logged_value": self.logged_value,
            "confidence": self.confidence, "gate": "DR lower bound > logged value",
            "settings": [s.as_row() for s in self.settings],
            "recommended": None if self.recommended is None else self.recommended.as_row(),
            "notes": self.notes,
        }  # fmt: skip

    def table(self) -> str:
        lines = [
            f"{'setting':<28} {'DR':>9} {f'{self.confidence:.2%} interval':>25} {'ESS':>9}  gate",
        ]
        for s in self.settings:
            name = " ".join(f"{k}={v}" for k, v in s.params.items())
            interval = f"[{s.low:.5f}, {s.high:.5f}]"
            lines.append(
                f"{name:<28} {s.value:>9.5f} {interval:>25} {s.ess:>9.1f}  {'pass' if s.passes else '-'}"
            )
        lines.append(f"logged value {self.logged_value:.5f} (the logging policy's mean reward, n={self.n})")
        if self.recommended is None:
            lines.append(
                "no recommendation: no setting's lower bound beats the logged value (keep the current policy)"
            )
        else:
            name = " ".join(f"{k}={v}" for k, v in self.recommended.params.items())
            lines.append(f"recommended: {name} (DR {self.recommended.value:.5f}, lower bound "
                         f"{self.recommended.low:.5f} > {self.logged_value:.5f})")  # fmt: skip
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """{"alpha": [0.1, 1], "floor": [0.01]} -> [{"alpha": 0.1, "floor": 0.01}, {"alpha": 1, ...}]."""
    for name, values in grid.items():
        if not values:
            raise ValueError(f"--grid {name}: give at least one value")
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def tune(
    logs: LoggedData,
    policy: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    alpha: float = ALPHA,
    block: int = 1,
    seed: int = 1,
    arms: Sequence[str] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> TuneResult:
    """Evaluate every grid setting (plus the `fixed` parameters) on `logs` and gate the recommendation."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    combos = expand_grid(grid)
    confidence = 1 - alpha / len(combos)
    settings = []
    notes: list[str] = []
    logged = 0.0
    n = len(logs)
    for combo in combos:
        params = {**dict(fixed or {}), **combo}
        result = evaluate(logs, policy, params, arms=arms, block=block, seed=seed, confidence=confidence)
        dr = next(e for e in result.estimates if e.estimator == "dr")
        logged, n = result.logged_value, result.n
        settings.append(Setting(combo, dr.value, dr.low, dr.high, dr.ess, bool(dr.low > logged)))
        notes.extend(note for note in result.notes if note not in notes)
    passing = [s for s in settings if s.passes]
    best = max(passing, key=lambda s: s.value) if passing else None
    return TuneResult(policy, n, logged, confidence, settings, best, notes)
