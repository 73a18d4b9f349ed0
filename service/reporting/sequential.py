"""Always-valid (sequential) tests of a variant's click rate against another's, for a dashboard that is
looked at on every refresh.

A fixed-horizon test (the pooled z-test in `stats`) promises a 5% false-positive rate for ONE look at a
sample size fixed in advance; a dashboard refreshed every few seconds and acted on at the first p < 0.05
looks thousands of times, and its false-winner rate grows without bound (measured: bench/aa_sequential.py,
docs/results.md). The mixture sequential probability ratio test (mSPRT; Robbins 1970, as used for A/B
testing by Johari, Koomen, Pekelis & Walsh 2017, "Peeking at A/B tests") fixes that: with a normal
mixing distribution N(0, tau^2) over the effect, the mixture likelihood ratio of the estimated effect
d (standard error s) against 0 is

    Lambda = sqrt(s^2 / (s^2 + tau^2)) * exp(tau^2 d^2 / (2 s^2 (s^2 + tau^2)))

a nonnegative martingale under the null, so by Ville's inequality P(ever Lambda >= 1/alpha) <= alpha:
p = min(1, 1/Lambda) is an always-valid p-value (the first look with p < alpha is a valid decision however
often one looks), and {effect : Lambda(effect) < 1/alpha} an always-valid confidence sequence (Howard,
Ramdas, McAuliffe & Sekhon 2021, Annals of Statistics, the normal-mixture boundary). Both use the normal
approximation of the estimate; it is asymptotic, so no decision is made before each arm has
MIN_CLICKS clicks (the A/A study measures the whole procedure, guard included).

Scales: the p-value tests the difference of click rates (defined even with zero clicks), with the pooled
rate's standard error and tau = TAU_RELATIVE x the pooled rate — so the mixture is scale-free (effects of
about +-10% relative weigh most). The interval is on the relative lift, through the log of the rate ratio
(Katz standard error, like the fixed-horizon interval), with tau = TAU_RELATIVE on the log scale.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ALPHA = 0.05
TAU_RELATIVE = 0.1  # mixing scale: relative effects of about this size get the most power
MIN_CLICKS = 10  # per arm, before any decision (the normal approximation needs some clicks)


def _check(x: int, n: int, what: str) -> None:
    if n < 0 or not 0 <= x <= n:
        raise ValueError(f"{what}: clicks must be in [0, impressions], got {x!r} of {n!r}")


def p_value(x_a: int, n_a: int, x_b: int, n_b: int, tau_relative: float = TAU_RELATIVE) -> float | None:
    """Always-valid two-sided p-value of rate_a == rate_b; None when an arm has no impressions, 1.0 before
    both arms have MIN_CLICKS clicks or when the pooled rate is 0 or 1."""
    _check(x_a, n_a, "arm a")
    _check(x_b, n_b, "arm b")
    if not tau_relative > 0:
        raise ValueError(f"tau_relative must be > 0, got {tau_relative!r}")
    if n_a == 0 or n_b == 0:
        return None
    one = p_values(np.array([x_a]), np.array([n_a]), np.array([x_b]), np.array([n_b]), tau_relative)
    return float(one[0])


def p_values(
    x_a: np.ndarray, n_a: np.ndarray, x_b: np.ndarray, n_b: np.ndarray, tau_relative: float = TAU_RELATIVE
) -> np.ndarray:
    """`p_value` elementwise on arrays of counts (every n > 0), for simulations of many looks."""
    x_a, n_a, x_b, n_b = (np.asarray(v, dtype=float) for v in (x_a, n_a, x_b, n_b))
    pooled = (x_a + x_b) / (n_a + n_b)
    ok = (np.minimum(x_a, x_b) >= MIN_CLICKS) & (pooled > 0) & (pooled < 1)
    pooled = np.where(ok, pooled, 0.5)
    s2 = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    tau2 = (tau_relative * pooled) ** 2
    d = x_b / n_b - x_a / n_a
    log_ratio = 0.5 * np.log(s2 / (s2 + tau2)) + tau2 * d * d / (2 * s2 * (s2 + tau2))
    return np.asarray(np.where(ok & (log_ratio > 0), np.exp(-np.maximum(log_ratio, 0.0)), 1.0))


def fixed_horizon_p_values(x_a: np.ndarray, n_a: np.ndarray, x_b: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    """`stats.two_proportion_p_value` elementwise on arrays (every n > 0): today's fixed-horizon test,
    for measuring what it does when looked at on every refresh."""
    x_a, n_a, x_b, n_b = (np.asarray(v, dtype=float) for v in (x_a, n_a, x_b, n_b))
    pooled = (x_a + x_b) / (n_a + n_b)
    ok = (pooled > 0) & (pooled < 1)
    pooled = np.where(ok, pooled, 0.5)
    z = (x_b / n_b - x_a / n_a) / np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return np.asarray(np.where(ok, _erfc(np.abs(z) / math.sqrt(2.0)), 1.0))


def _erfc(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.vectorize(math.erfc, otypes=[float])(x))


def lift_interval(
    control_clicks: int,
    control_n: int,
    variant_clicks: int,
    variant_n: int,
    alpha: float = ALPHA,
    tau: float = TAU_RELATIVE,
) -> list[float] | None:
    """Always-valid (1 - alpha) interval of the relative lift variant/control - 1; None with zero clicks
    in an arm (the log ratio is undefined)."""
    _check(control_clicks, control_n, "control")
    _check(variant_clicks, variant_n, "variant")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if control_clicks == 0 or variant_clicks == 0:
        return None
    log_rr = math.log((variant_clicks / variant_n) / (control_clicks / control_n))
    s2 = 1 / variant_clicks - 1 / variant_n + 1 / control_clicks - 1 / control_n
    if s2 <= 0:  # every impression clicked in both arms
        return [math.exp(log_rr) - 1, math.exp(log_rr) - 1]
    tau2 = tau * tau
    half = math.sqrt(s2 * (s2 + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((s2 + tau2) / s2)))
    return [math.exp(log_rr - half) - 1, math.exp(log_rr + half) - 1]


def compare(control_clicks: int, control_n: int, variant_clicks: int, variant_n: int) -> dict[str, Any]:
    """{"p_value", "ci", "significant"}: the always-valid numbers the badge and the flags use."""
    p = p_value(control_clicks, control_n, variant_clicks, variant_n)
    return {
        "p_value": p,
        "ci": lift_interval(control_clicks, control_n, variant_clicks, variant_n),
        "significant": p is not None and p < ALPHA,
    }
