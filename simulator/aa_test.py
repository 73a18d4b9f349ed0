"""A/A test looked at on every dashboard refresh: how often does a rule declare a winner between two
identical variants?

Two arms with the same click rate receive `batch` impressions each between looks; after every batch the
rule is evaluated on the cumulative counts, for `looks` looks. A run "declares a winner" when the rule
fires at any look (a dashboard user acts on the first flag). Rules: "fixed-horizon" (today's: the pooled
two-proportion z-test, p < 0.05, `stats.two_proportion_p_value`) and "sequential" (the always-valid mSPRT
p-value, `service.reporting.sequential`). bench/aa_sequential.py prints both; a test asserts the second.
"""

from __future__ import annotations

import numpy as np

from service.reporting import sequential

RULES = ("fixed-horizon", "sequential")


def false_winner_rate(
    rule: str,
    runs: int,
    looks: int = 10_000,
    batch: int = 100,
    rate: float = 0.02,
    seed: int = 0,
    alpha: float = 0.05,
    chunk: int = 100,
) -> float:
    """Share of `runs` A/A runs in which `rule` declared a winner at some look."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    rng = np.random.default_rng(seed)
    fired = 0
    n = batch * np.arange(1, looks + 1, dtype=float)
    for start in range(0, runs, chunk):
        r = min(chunk, runs - start)
        x_a = np.cumsum(rng.binomial(batch, rate, (r, looks)), axis=1)
        x_b = np.cumsum(rng.binomial(batch, rate, (r, looks)), axis=1)
        if rule == "sequential":
            p = sequential.p_values(x_a, n, x_b, n)
        else:
            p = sequential.fixed_horizon_p_values(x_a, n, x_b, n)
        fired += int((p < alpha).any(axis=1).sum())
    return fired / runs
