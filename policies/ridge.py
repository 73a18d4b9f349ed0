"""Per-arm ridge regression: the statistics LinUCB and linear Thompson sampling share.

For each arm k (disjoint model) and the observations (x_i, r_i) of that arm, oldest first:

    A_k = ridge·I + Σ_i γ^(m-1-i) x_i x_iᵀ        b_k = Σ_i γ^(m-1-i) r_i x_i        θ_k = A_k⁻¹ b_k

where γ is the forgetting factor (1: none) and m the arm's number of observations. Each observation of an
arm discounts that arm's earlier ones by γ, so its estimate follows roughly its last 1/(1-γ) observations;
the ridge term is not discounted, so A_k stays ⪰ ridge·I and invertible however long a feature stays 0.

A_k⁻¹ is kept current by Sherman–Morrison rank-one updates and recomputed from A_k every
`refactor_every` updates of that arm, which bounds floating-point drift. A_k itself is only needed for
those re-inversions, so single observations are buffered and folded into it in blocks (`_fold`). With
forgetting (γ < 1) an update is A ← γA + (1-γ)·ridge·I + xxᵀ, which is not rank-one, so A_k⁻¹ is
recomputed on every update of arm k.
Early updates (`early_updates`, see `Policy.learn_decided_batch`): a decision's x xᵀ enters A_k when it is
made (reward 0), its reward r·x enters b_k when it arrives; A and b are sums, so once every outcome is
known they equal deadline-only learning of the same events. Pending outcomes count as 0 meanwhile — the
censoring of Vernade et al. (ICML 2020, OTFLinUCB); docs/architecture.md says why this estimator.
`update_batch` applies n observations with one matrix product per arm and gives the same A and b as n
calls of `update` (up to rounding); it updates A_k⁻¹ by the Woodbury identity (an m×m solve for the arm's
m new rows) or, when m >= d or a re-inversion is due anyway, recomputes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.base import Policy, Settings, check_number, resolve_early_updates

# Rows per chunk when scoring a batch: bounds the (n, K·d) temporary at a few MB.
_CHUNK_CELLS = 1 << 19
# Single observations buffered per arm before they are added to A_k with one matrix product.
_FOLD_ROWS = 64


@dataclass(frozen=True)
class RidgeSettings(Settings):
    """ridge: prior precision λ (> 0); forgetting: γ in (0, 1], 1 = none;
    refactor_every: rank-one updates of an arm between exact re-inversions of its A;
    early_updates: true, false, or None/"auto" (true unless forgetting < 1), a bool once constructed."""

    ridge: float = 1.0
    forgetting: float = 1.0
    refactor_every: int = 1000
    early_updates: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("ridge", self.ridge, low=0.0, low_open=True)
        check_number("forgetting", self.forgetting, low=0.0, high=1.0, low_open=True)
        check_number("refactor_every", self.refactor_every, low=1, integer=True)
        # frozen: store the resolved bool, so snapshots record how their statistics were learned
        object.__setattr__(self, "early_updates", resolve_early_updates(self.early_updates, self.forgetting))


class RidgeArms:
    """A (K, d, d), b (K, d), A⁻¹ (K, d, d), θ (K, d) and, per arm, the rank-one updates since the last
    re-inversion. Arrays are indexed like the policy's arms; d includes the bias column.

    The single-observation path (`update`, `mean_var_row`) is written for small d, where numpy's per-call
    overhead costs more than the arithmetic: `ndarray.dot` rather than `@`, per-arm views built once, and
    no temporaries beyond the two vectors of the rank-one update.
    """

    def __init__(self, settings: RidgeSettings, k: int, d: int) -> None:
        eye = np.eye(d)
        self._set(
            settings,
            A=np.repeat((settings.ridge * eye)[None], k, axis=0),
            b=np.zeros((k, d)),
            A_inv=np.repeat((eye / settings.ridge)[None], k, axis=0),
            theta=np.zeros((k, d)),
            updates=[0] * k,
        )

    def _set(
        self,
        settings: RidgeSettings,
        A: np.ndarray,
        b: np.ndarray,
        A_inv: np.ndarray,
        theta: np.ndarray,
        updates: list[int],
    ) -> None:
        k, d = b.shape
        self.settings = settings
        self.A = A
        self.b = b
        # A⁻¹ and θ are views of one (K·d + K, d) array, so one matrix-vector product gives A_k⁻¹x for
        # every arm and x·θ_k (A⁻¹ is symmetric).
        self._joint = np.concatenate([A_inv.reshape(k * d, d), theta])
        self.A_inv = self._joint[: k * d].reshape(k, d, d)
        self.theta = self._joint[k * d :]
        self._y = np.empty(k * d + k)  # scratch for mean_var_row: A_k⁻¹x for every arm, then x·θ_k
        self._y_arms = self._y[: k * d].reshape(k, d)
        self._y_mean = self._y[k * d :]
        self._updates = updates
        self._pending: list[list[np.ndarray]] = [[] for _ in range(k)]
        self._views = [(self.A_inv[i], self.b[i], self.theta[i]) for i in range(k)]

    # ------------------------------------------------------------------ scoring
    def mean_var_row(self, x: np.ndarray) -> tuple[list[float], list[float]]:
        """One context (d,) -> predicted mean x·θ_k and xᵀA_k⁻¹x for every arm k, as lists."""
        np.dot(self._joint, x, out=self._y)
        # xᵀA⁻¹x > 0 in exact arithmetic; rounding after many updates can leave it at -1e-17 (seen in a
        # demo run as a "math domain error" from sqrt), so clamp at 0.
        return self._y_mean.tolist(), np.maximum(self._y_arms.dot(x), 0.0).tolist()

    def mean_var(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) contexts -> predicted mean x·θ_k and xᵀA_k⁻¹x, both (n, K)."""
        n, d = x.shape
        k = self.theta.shape[0]
        mean = x @ self.theta.T
        var = np.empty((n, k))
        rows = self._joint[: k * d]
        step = max(1, _CHUNK_CELLS // (k * d))
        for s in range(0, n, step):
            xs = x[s : s + step]
            # A⁻¹ is symmetric, so row i of xs @ (A⁻¹ rows)ᵀ holds A_k⁻¹x for every arm k.
            proj = (xs @ rows.T).reshape(len(xs), k, d)
            var[s : s + step] = np.einsum("nkd,nd->nk", proj, xs)
        np.maximum(var, 0.0, out=var)  # rounding may leave tiny negatives (see mean_var_row)
        return mean, var

    # ------------------------------------------------------------------ learning
    def update(self, k: int, x: np.ndarray, r: float) -> None:
        """One observation of arm k. `x` (d,) is kept until folded into A: pass an array nobody mutates."""
        if self.settings.forgetting != 1.0:
            self._update_forgetting(k, x, r)
            return
        A_inv, b, theta = self._views[k]
        pending = self._pending[k]
        pending.append(x)
        if r != 0.0:
            b += r * x
        n = self._updates[k] + 1
        self._updates[k] = n
        if n >= self.settings.refactor_every:
            self._refactor(k)
            return
        if len(pending) >= _FOLD_ROWS:
            self._fold(k)
        u = A_inv.dot(x)
        # Sherman–Morrison with v = A⁻¹x / sqrt(1 + xᵀA⁻¹x); v_i·v_j is exactly symmetric, so A⁻¹ stays
        # exactly symmetric between re-inversions.
        v = (u * (1.0 / math.sqrt(1.0 + u.dot(x))))[:, None]
        A_inv -= v.dot(v.T)
        np.dot(A_inv, b, out=theta)

    def _update_forgetting(self, k: int, x: np.ndarray, r: float) -> None:
        # A ← γA + (1-γ)·ridge·I + xxᵀ is not a rank-one change: re-invert.
        gamma = self.settings.forgetting
        A, b = self.A[k], self.b[k]
        A *= gamma
        A.flat[:: A.shape[0] + 1] += (1.0 - gamma) * self.settings.ridge
        A += np.outer(x, x)
        b *= gamma
        b += r * x
        self._updates[k] += 1
        self._refactor(k)

    def update_batch(self, x: np.ndarray, arms: np.ndarray, r: np.ndarray) -> None:
        """n observations in order: x (n, d), arms (n,) indices, r (n,)."""
        gamma = self.settings.forgetting
        d = x.shape[1]
        for k in np.unique(arms).tolist():
            self._fold(k)
            rows = arms == k
            xk, rk = x[rows], r[rows]
            m = len(rk)
            if gamma == 1.0:
                decay, w = 1.0, np.ones(m)
            else:
                decay = gamma**m
                w = gamma ** np.arange(m - 1, -1, -1, dtype=float)
            A = self.A[k]
            A *= decay
            A += (xk * w[:, None]).T @ xk
            A.flat[:: d + 1] += (1.0 - decay) * self.settings.ridge
            self.b[k] = decay * self.b[k] + xk.T @ (w * rk)
            self._updates[k] += m
            if gamma != 1.0 or m >= d or self._updates[k] >= self.settings.refactor_every:
                self._refactor(k)
            else:
                self._woodbury(k, xk)

    def add_rewards(self, x: np.ndarray, arms: np.ndarray, r: np.ndarray) -> None:
        """b_k += r·x for n rows whose x xᵀ is already in A_k (early updates: the decision entered A when
        it was made, its reward arrives now). A is unchanged, so only θ of the touched arms moves."""
        np.add.at(self.b, arms, r[:, None] * x)
        for k in np.unique(arms).tolist():
            np.dot(self.A_inv[k], self.b[k], out=self.theta[k])

    def _woodbury(self, k: int, xk: np.ndarray) -> None:
        """A_k⁻¹ after A_k += xkᵀxk (m rows): A⁻¹ - A⁻¹Xᵀ(I + XA⁻¹Xᵀ)⁻¹XA⁻¹, an m×m solve."""
        A_inv = self.A_inv[k]
        u = xk @ A_inv  # rows are (A⁻¹x_i)ᵀ since A⁻¹ is symmetric
        s = u @ xk.T
        s.flat[:: len(xk) + 1] += 1.0
        w = u.T @ np.linalg.solve(s, u)
        A_inv -= 0.5 * (w + w.T)  # exactly symmetric
        np.dot(A_inv, self.b[k], out=self.theta[k])

    def _fold(self, k: int) -> None:
        """Add the buffered single observations of arm k to A_k."""
        pending = self._pending[k]
        if pending:
            rows = np.array(pending)
            self.A[k] += rows.T @ rows
            pending.clear()

    def _refactor(self, k: int) -> None:
        self._fold(k)
        inv = np.linalg.inv(self.A[k])
        self.A_inv[k] = 0.5 * (inv + inv.T)
        np.dot(self.A_inv[k], self.b[k], out=self.theta[k])
        self._updates[k] = 0

    # ------------------------------------------------------------------ arms
    def add_arm(self) -> None:
        for k in range(len(self._pending)):
            self._fold(k)
        d = self.b.shape[1]
        eye = np.eye(d)
        self._set(
            self.settings,
            A=np.concatenate([self.A, (self.settings.ridge * eye)[None]]),
            b=np.concatenate([self.b, np.zeros((1, d))]),
            A_inv=np.concatenate([self.A_inv, (eye / self.settings.ridge)[None]]),
            theta=np.concatenate([self.theta, np.zeros((1, d))]),
            updates=[*self._updates, 0],
        )

    def remove_arm(self, index: int) -> None:
        for k in range(len(self._pending)):
            self._fold(k)
        self._set(
            self.settings,
            A=np.delete(self.A, index, axis=0),
            b=np.delete(self.b, index, axis=0),
            A_inv=np.delete(self.A_inv, index, axis=0),
            theta=np.delete(self.theta, index, axis=0),
            updates=self._updates[:index] + self._updates[index + 1 :],
        )

    # ------------------------------------------------------------------ state
    def arrays(self) -> dict[str, np.ndarray]:
        for k in range(len(self._pending)):
            self._fold(k)
        return {
            "A": self.A,
            "A_inv": self.A_inv,
            "b": self.b,
            "theta": self.theta,
            "updates": np.array(self._updates, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, settings: RidgeSettings, arrays: Mapping[str, np.ndarray]) -> RidgeArms:
        b = np.array(arrays["b"], dtype=float)
        k, d = b.shape
        A = np.array(arrays["A"], dtype=float)
        A_inv = np.asarray(arrays["A_inv"], dtype=float)
        theta = np.asarray(arrays["theta"], dtype=float)
        updates = np.asarray(arrays["updates"], dtype=np.int64)
        if A.shape != (k, d, d) or A_inv.shape != (k, d, d) or theta.shape != (k, d) or updates.shape != (k,):
            raise ValueError(f"ridge state arrays do not match {k} arms and {d} columns")
        obj = cls.__new__(cls)
        obj._set(settings, A=A, b=b, A_inv=A_inv, theta=theta, updates=updates.tolist())
        return obj


class RidgePolicy(Policy):
    """Base of the policies scored on per-arm ridge statistics (LinUCB, linear Thompson sampling): they
    differ only in how they turn the statistics into probabilities; learning, arms and state are here."""

    settings: RidgeSettings
    _stats: RidgeArms

    def _init_state(self) -> None:
        self._stats = RidgeArms(self.settings, len(self._arms), len(self._features) + 1)

    def _learn_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray, props: np.ndarray) -> None:
        self._stats.update_batch(x, arms, rewards)

    def _learn_one(self, x: np.ndarray, arm: int, reward: float, propensity: float) -> None:
        self._stats.update(arm, x, reward)

    def _learn_decided_rows(self, x: np.ndarray, arms: np.ndarray) -> None:
        self._stats.update_batch(x, arms, np.zeros(len(arms)))

    def _learn_reward_rows(self, x: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        self._stats.add_rewards(x, arms, rewards)

    def start_early_updates(self) -> None:
        super().start_early_updates()
        self._stats.settings = self.settings  # the statistics keep the policy's settings object

    def _on_add_arm(self, arm: str, arm_features: Mapping[str, float] | None) -> None:
        self._stats.add_arm()

    def _on_remove_arm(self, index: int) -> None:
        self._stats.remove_arm(index)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return self._stats.arrays()

    def _load_state(self, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._stats = RidgeArms.from_arrays(self.settings, arrays)
