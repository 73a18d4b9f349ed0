"""The join: how an impression gets its one label. This module owns the rule.

Each impression ends exactly one way:
- its first click at or before its deadline (decided_at + attribution window) labels it reward 1;
- if no click came by the deadline, the expiry sweep labels it reward 0 ("defaulted");
- a click on an impression that is already labelled is a "duplicate" if it was clicked, or "late"
  if it had defaulted or the click came after the deadline (late clicks are counted, never learned);
- a click on an id never seen (or long forgotten) is "unknown".

`MemoryJoin` is the rule executed in process memory, used by the in-process simulator. The service runs
the same rule atomically inside Redis (the Lua scripts in `service/lua/`, driven by `RedisJoin` in
`service/redis_join.py`); tests feed random interleavings to both and require identical outcomes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np


class ClickOutcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    LATE = "late"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Labelled:
    """One impression's final label, emitted exactly once."""

    impression_id: str
    reward: float
    labelled_at: float
    record: Any  # whatever the caller stored with the impression (the decision record)


class MemoryJoin:
    """The join rule in memory. Times are seconds on any clock the caller chooses, non-decreasing in
    `impress` calls (so deadlines come in order). Finished impressions are remembered for `retention`
    seconds after their deadline (as Redis keeps them by TTL); a click after that is "unknown"."""

    def __init__(self, window: float, retention: float | None = None) -> None:
        if not window > 0:
            raise ValueError(f"attribution window must be > 0 seconds, got {window!r}")
        self.window = float(window)
        self.retention = float(window if retention is None else retention)
        self._pending: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # id -> (deadline, record)
        self._done: OrderedDict[str, tuple[float, bool]] = OrderedDict()  # id -> (forget_at, clicked?)
        self._last_decided = -np.inf
        self.counts = {
            "impressions": 0,
            "clicked": 0,
            "defaulted": 0,
            "duplicate": 0,
            "late": 0,
            "unknown": 0,
        }

    @property
    def pending(self) -> int:
        return len(self._pending)

    def impress(self, impression_id: str, decided_at: float, record: Any = None) -> None:
        if decided_at < self._last_decided:
            raise ValueError("impressions must arrive in time order")
        if impression_id in self._pending or impression_id in self._done:
            raise ValueError(f"impression id {impression_id!r} was already used")
        self._last_decided = decided_at
        self._pending[impression_id] = (decided_at + self.window, record)
        self.counts["impressions"] += 1

    def click(self, impression_id: str, at: float) -> tuple[ClickOutcome, Labelled | None]:
        entry = self._pending.get(impression_id)
        if entry is not None:
            deadline, record = entry
            if at <= deadline:
                del self._pending[impression_id]
                self._done[impression_id] = (deadline + self.retention, True)
                self.counts["clicked"] += 1
                return ClickOutcome.RECORDED, Labelled(impression_id, 1.0, at, record)
            # Past the deadline but not swept yet: the expiry wins the race, then the click is late.
            del self._pending[impression_id]
            labelled = self._default(impression_id, deadline, record)
            self.counts["late"] += 1
            return ClickOutcome.LATE, labelled
        done = self._done.get(impression_id)
        if done is None:
            self.counts["unknown"] += 1
            return ClickOutcome.UNKNOWN, None
        if done[1]:
            self.counts["duplicate"] += 1
            return ClickOutcome.DUPLICATE, None
        self.counts["late"] += 1
        return ClickOutcome.LATE, None

    def expire(self, now: float) -> list[Labelled]:
        """Label reward 0 every pending impression whose deadline is before `now`, oldest first."""
        out = []
        while self._pending:
            impression_id, (deadline, record) = next(iter(self._pending.items()))
            if deadline >= now:
                break
            self._pending.popitem(last=False)
            out.append(self._default(impression_id, deadline, record))
        while self._done:
            impression_id, (forget_at, _) = next(iter(self._done.items()))
            if forget_at >= now:
                break
            self._done.popitem(last=False)
        return out

    def _default(self, impression_id: str, deadline: float, record: Any) -> Labelled:
        self._done[impression_id] = (deadline + self.retention, False)
        self.counts["defaulted"] += 1
        return Labelled(impression_id, 0.0, deadline, record)


def label_batch(
    decided_at: np.ndarray, first_click_at: np.ndarray, window: float
) -> tuple[np.ndarray, np.ndarray]:
    """The same rule, vectorized, for impressions whose first click time is known (np.inf: no click).

    Returns (reward, labelled_at): reward 1 at the click time when the click is within the window,
    else reward 0 at the deadline. Equivalent to MemoryJoin with the expiry sweep run continuously.
    """
    decided_at = np.asarray(decided_at, dtype=float)
    first_click_at = np.asarray(first_click_at, dtype=float)
    deadline = decided_at + window
    clicked = first_click_at <= deadline
    return clicked.astype(float), np.where(clicked, first_click_at, deadline)
