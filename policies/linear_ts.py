"""Linear Thompson sampling (Agrawal & Goyal 2013) on the per-arm ridge statistics LinUCB uses.

Arm k's score for context x is a draw from N(x·θ_k, v²·xᵀA_k⁻¹x), the posterior predictive of a Bayesian
linear regression with noise scale v. A decision estimates the probability that each arm has the highest
score from `n_samples` Monte Carlo draws of those univariate normals, floors it, then samples the arm from
that floored vector, so the logged propensity is exactly the probability the arm was drawn with.

Randomness: one decision consumes n_samples·K + 1 float32 standard normals from the policy's generator, the
last one turned into the sampling uniform by the normal CDF. `decide_batch` draws the same normals in the same
order, so it picks exactly the arms repeated `decide` calls would. `probabilities()` consumes the same
amount of randomness as a decision (it is an estimate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policies.base import BatchDecision, Context, Decision, check_number, pick, pick_batch
from policies.ridge import RidgePolicy, RidgeSettings

_CHUNK_CELLS = 1 << 19  # normals per chunk of rows in decide_batch
_SQRT_HALF = math.sqrt(0.5)


@dataclass(frozen=True)
class LinearTSSettings(RidgeSettings):
    """v: posterior scale (> 0; larger explores more); n_samples: Monte Carlo draws per decision."""

    v: float = 0.5
    n_samples: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("v", self.v, low=0.0, low_open=True)
        check_number("n_samples", self.n_samples, low=1, high=100_000, integer=True)


class LinearTS(RidgePolicy):
    name = "linear_ts"
    settings_class = LinearTSSettings
    settings: LinearTSSettings

    # ------------------------------------------------------------------ deciding
    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) contexts -> Monte Carlo argmax probabilities (n, K) and sampling uniforms (n,)."""
        n = x.shape[0]
        k = len(self._arms)
        s = self.settings.n_samples
        mean, var = self._stats.mean_var(x)
        sd = self.settings.v * np.sqrt(var)
        p = np.empty((n, k))
        u = np.empty(n)
        step = max(1, _CHUNK_CELLS // (s * k + 1))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            z = self._rng.standard_normal((hi - lo, s * k + 1), dtype=np.float32)  # float32: twice as fast
            draws = mean[lo:hi, None, :] + sd[lo:hi, None, :] * z[:, :-1].reshape(hi - lo, s, k)
            winners = draws.argmax(axis=2) + k * np.arange(hi - lo)[:, None]
            p[lo:hi] = np.bincount(winners.ravel(), minlength=(hi - lo) * k).reshape(hi - lo, k) / s
            u[lo:hi] = [0.5 * math.erfc(-t * _SQRT_HALF) for t in z[:, -1].tolist()]
        return p, u

    def _raw_probabilities(self, x: np.ndarray) -> np.ndarray:
        return self._estimate(x)[0]

    def decide(self, context: Context) -> Decision:
        p_raw, u = self._estimate(self.vectorize(context)[None, :])
        p = self._floored_row(p_raw[0].tolist())
        i = pick(p, float(u[0]))
        return Decision(self._arms[i], dict(zip(self._arms, p, strict=True)), p[i])

    def decide_batch(self, contexts: np.ndarray) -> BatchDecision:
        p_raw, u = self._estimate(self.vectorize_batch(contexts))
        p = self._floored(p_raw)
        return BatchDecision(tuple(self._arms), pick_batch(p, u), p)

    # ------------------------------------------------------------------ learning and state
