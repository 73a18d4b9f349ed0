"""Confidence intervals for click rates that hold where artwork click rates live (0.1–5%, many images).

The off-policy estimators (`service.reporting.ope`) all reduce to a rate with an *effective count*:

- replay: the mean of m matched rewards — a proportion out of m;
- SNIPS: a weighted mean whose worst-case (Bernoulli) variance is V(1-V)/ESS, ESS = (sum w)^2 / sum w^2
  (Kish) — a proportion out of ESS;
- IPS and DR: a mean of n terms w·r (plus DR's correction) whose worst-case variance is V(c - V)/n with
  c = sum w^2 r / sum w r (the weights' second moment over their mean, taken on the clicks, and at least the
  same ratio over all events) — c times a proportion out of n.

For each we take a binomial interval of that proportion — Wilson's score interval, with the lower end
replaced by the Poisson one when the effective count of successes is 3 or fewer (Brown, Cai & DasGupta
2001, "modified Wilson"; plain Wilson under-covers there) — and scale it back. A deterministic candidate on
uniform logs (w = K on matches, 0 elsewhere) makes these exact: all four estimators reduce to the binomial
count of clicks among the matches. The interval is then joined with the usual normal interval (which is
wider when many clicks sit on a few large weights, a case the Bernoulli model understates) and clipped
to the reward's bounds. Zero clicks give [0, about 3.7/effective count], never [0, 0]; no interval reaches
below 0. Coverage and widths: bench/ope_coverage.py and docs/results.md.
"""

from __future__ import annotations

import math

from service.reporting.stats import regularized_gamma_q

POISSON_LOWER_MAX = 3.0  # modified Wilson: the Poisson lower end for effective counts up to this


def z_value(confidence: float) -> float:
    """Two-sided normal quantile for `confidence` in (0, 1), e.g. 1.96 for 0.95."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return _normal_quantile(1 - (1 - confidence) / 2)


def _normal_quantile(p: float) -> float:
    """Inverse standard normal CDF by bisection on erfc (|error| < 1e-12; only called a few times)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return (lo + hi) / 2


def poisson_lower(count: float, alpha_half: float) -> float:
    """Lower confidence bound of a Poisson mean after observing `count` (> 0, need not be an integer):
    the lambda with P(Gamma(count) <= lambda) = alpha_half."""
    if count <= 0:
        return 0.0
    lo, hi = 0.0, count + 20 * math.sqrt(count) + 20
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1 - regularized_gamma_q(count, mid) < alpha_half:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def rate_interval(successes: float, trials: float, confidence: float = 0.95) -> tuple[float, float]:
    """Modified Wilson interval of successes/trials; both may be non-integer effective counts
    (0 <= successes <= trials, trials > 0)."""
    if not trials > 0:
        raise ValueError(f"trials must be > 0, got {trials!r}")
    x = min(max(successes, 0.0), trials)
    z = z_value(confidence)
    p = x / trials
    z2n = z * z / trials
    center = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(max(p * (1 - p), 0.0) / trials + z2n / (4 * trials))
    lo, hi = max(0.0, center - half), min(1.0, center + half)
    alpha_half = (1 - confidence) / 2
    if x <= 0:
        lo = 0.0
    elif x <= POISSON_LOWER_MAX:
        lo = min(lo, poisson_lower(x, alpha_half) / trials)
    if trials - x <= 0:
        hi = 1.0
    elif trials - x <= POISSON_LOWER_MAX:
        hi = max(hi, 1 - poisson_lower(trials - x, alpha_half) / trials)
    return lo, hi


def scaled_rate_interval(
    value: float, trials: float, scale: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Interval of `value`, read as `scale` times a proportion out of `trials`."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    lo, hi = rate_interval(value / scale * trials, trials, confidence)
    return lo * scale, hi * scale
