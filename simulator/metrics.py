"""What a run measures, and how it is summarized. Both drivers feed the same `Recorder`.

Per impression the world knows the click probability of the shown artwork (`expected`), of the best
artwork for that viewer (`oracle`) and the average over the available artworks (`uniform`), plus the
label the join gave (`reward`: a click within the attribution window). Regret is pseudo-regret,
sum(oracle - expected), so it is not blurred by click noise. Fraction of oracle = expected CTR / oracle
CTR. Impressions are binned into `buckets` equal slices of the run for the curves over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Recorder:
    total: int
    buckets: int
    n_titles: int
    n_slots: int

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"total must be >= 1, got {self.total}")
        self.buckets = max(1, min(self.buckets, self.total))
        b = self.buckets
        self.count = np.zeros(b)
        self.clicks = np.zeros(b)
        self.expected = np.zeros(b)
        self.oracle = np.zeros(b)
        self.uniform = np.zeros(b)
        self.time_end = np.zeros(b)
        self.share = np.zeros((b, self.n_titles, self.n_slots))  # impressions per (bucket, title, slot)
        self.best = np.zeros((b, self.n_titles, self.n_slots))  # the oracle's choices, likewise
        self.seen = 0

    def add(
        self,
        index: np.ndarray,
        time: np.ndarray,
        title: np.ndarray,
        slot: np.ndarray,
        expected: np.ndarray,
        oracle: np.ndarray,
        uniform: np.ndarray,
        reward: np.ndarray,
        best_slot: np.ndarray | None = None,
    ) -> None:
        """Record impressions by their position `index` in the run (0-based); `best_slot` is the oracle's
        artwork slot for each impression (for the oracle's traffic share)."""
        b = np.minimum(index * self.buckets // self.total, self.buckets - 1)
        n = self.buckets
        self.count += np.bincount(b, minlength=n)
        self.clicks += np.bincount(b, weights=reward, minlength=n)
        self.expected += np.bincount(b, weights=expected, minlength=n)
        self.oracle += np.bincount(b, weights=oracle, minlength=n)
        self.uniform += np.bincount(b, weights=uniform, minlength=n)
        np.maximum.at(self.time_end, b, time)
        np.add.at(self.share, (b, title, slot), 1.0)
        if best_slot is not None:
            np.add.at(self.best, (b, title, best_slot), 1.0)
        self.seen += len(index)

    def timeseries(self) -> pd.DataFrame:
        n = np.maximum(self.count, 1)
        cum_n = np.maximum(np.cumsum(self.count), 1)
        return pd.DataFrame(
            {
                "bucket": np.arange(self.buckets),
                "impressions_end": np.cumsum(self.count).astype(np.int64),
                "time_end": self.time_end,
                "ctr": self.clicks / n,
                "expected_ctr": self.expected / n,
                "oracle_ctr": self.oracle / n,
                "uniform_ctr": self.uniform / n,
                "fraction_of_oracle": self.expected / np.maximum(self.oracle, 1e-300),
                "cumulative_regret": np.cumsum(self.oracle - self.expected),
                "cumulative_expected_ctr": np.cumsum(self.expected) / cum_n,
                # expected clicks / oracle clicks from the start of the run to the bucket's end
                "cumulative_fraction_of_oracle": np.cumsum(self.expected)
                / np.maximum(np.cumsum(self.oracle), 1e-300),
            }
        )

    def summary(self) -> dict[str, float]:
        n = max(self.count.sum(), 1.0)
        return {
            "impressions": float(self.count.sum()),
            "ctr": float(self.clicks.sum() / n),
            "expected_ctr": float(self.expected.sum() / n),
            "oracle_ctr": float(self.oracle.sum() / n),
            "uniform_ctr": float(self.uniform.sum() / n),
            "fraction_of_oracle": float(self.expected.sum() / max(self.oracle.sum(), 1e-300)),
            "regret": float((self.oracle - self.expected).sum()),
            # the second half shows what the policy converged to, without its early exploration
            "fraction_of_oracle_last_half": float(
                self.expected[self.buckets // 2 :].sum() / max(self.oracle[self.buckets // 2 :].sum(), 1e-300)
            ),
        }

    def traffic_share(self, title_ids: list[str], slot_ids: list[list[str]]) -> pd.DataFrame:
        """Long table: bucket, title, artwork, share of that title's impressions in the bucket, and the
        share the oracle would give it."""
        rows: list[dict[str, Any]] = []
        for t, title in enumerate(title_ids):
            totals = self.share[:, t, :].sum(axis=1)
            for s, artwork in enumerate(slot_ids[t]):
                share = self.share[:, t, s] / np.maximum(totals, 1)
                best = self.best[:, t, s] / np.maximum(totals, 1)
                rows.extend(
                    {
                        "bucket": b,
                        "title_id": title,
                        "artwork_id": artwork,
                        "share": float(share[b]),
                        "oracle_share": float(best[b]),
                    }  # fmt: skip
                    for b in range(self.buckets)
                )
        return pd.DataFrame(rows)


@dataclass
class RunResult:
    """One policy on one world and seed."""

    policy: str
    seed: int
    summary: dict[str, float]
    timeseries: pd.DataFrame
    traffic_share: pd.DataFrame
    extra: dict[str, Any] = field(default_factory=dict)  # driver-specific counts (join outcomes, speed...)

    def summary_row(self) -> dict[str, Any]:
        return {"policy": self.policy, "seed": self.seed, **self.summary, **self.extra}
