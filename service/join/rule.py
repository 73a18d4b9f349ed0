"""The join: how an impression gets its one label. This module owns the rule.

Each impression ends exactly one way, and always at its deadline (decided_at + attribution window):
- if a click came at or before the deadline, the impression is labelled reward 1 ("clicked");
- otherwise it is labelled reward 0 ("defaulted");
- the label is emitted once, by the expiry sweep (or by a click arriving after the deadline before the
  sweep got there: it performs the expiry first).
Click outcomes, answered at once: the first click within the window is "recorded"; any further click on
a clicked impression is a "duplicate"; a click after the deadline on an impression that was not clicked
is "late" (counted, never learned); a click on an id never seen (or long forgotten) is "unknown".

Why labels wait for the deadline even for clicks: a learner that sees clicks immediately but
non-clicks only a window later over-credits every artwork it showed recently, and the more it shows
one, the more it over-credits it. Waiting costs one window of learning delay and removes the bias
(measured by bench/label_timing.py; numbers in docs/benchmarks.md, "Labels at the deadline").

Deferred impressions and graded rewards extend the rule (service/store/lua/, docs/api.md): a deferred
impression counts nowhere until activated, its deadline is activation + window, and one never activated
within a window of its decision is counted never_shown and never labelled; a reward on a deferred
impression activates it. With a title's reward config the label is the first/sum/max of the rewards in the
window, clipped to [min, max] (a click is a reward of 1). These extensions live in the Lua scripts only
for now: `MemoryJoin` below, which the in-process simulator uses, is the click rule without them, and the
property test compares the two on clicks (tests/service/join/test_defer_and_rewards.py tests the rest).

`MemoryJoin` and `label_batch` are the rule executed in process memory, used by the in-process
simulator. The service runs the same rule atomically inside Redis (the Lua scripts in `service/store/lua/`,
driven by `RedisJoin` in `service/join/redis_join.py`); a property-based test feeds random interleavings to
both and requires identical outcomes.
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


class Activation(StrEnum):
    """What POST /activate answers per impression id (service/store/lua/activate.lua)."""

    ACTIVATED = "activated"  # it was deferred and is shown from now on (its window starts now)
    ALREADY_ACTIVE = "already_active"  # shown already: activated before, rewarded, or never deferred
    UNKNOWN = "unknown"  # never logged, or forgotten after its retention
    EXPIRED = "expired"  # deferred, and its attribution window since the decision has passed


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
        # id -> [deadline, record, clicked?]
        self._pending: OrderedDict[str, list[Any]] = OrderedDict()
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
        self._pending[impression_id] = [decided_at + self.window, record, False]
        self.counts["impressions"] += 1

    def click(self, impression_id: str, at: float) -> tuple[ClickOutcome, Labelled | None]:
        """The click's outcome, and the label if this click performed an overdue expiry."""
        entry = self._pending.get(impression_id)
        if entry is not None:
            deadline, _, clicked = entry
            if at <= deadline:
                if clicked:
                    self.counts["duplicate"] += 1
                    return ClickOutcome.DUPLICATE, None
                entry[2] = True
                self.counts["clicked"] += 1
                return ClickOutcome.RECORDED, None
            # Past the deadline but not swept yet: the expiry happens first, then the click is judged.
            labelled = self._label(impression_id)
            if clicked:
                self.counts["duplicate"] += 1
                return ClickOutcome.DUPLICATE, labelled
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
        """Label every pending impression whose deadline is before `now`, oldest first."""
        out = []
        while self._pending:
            impression_id, entry = next(iter(self._pending.items()))
            if entry[0] >= now:
                break
            out.append(self._label(impression_id))
        while self._done:
            impression_id, (forget_at, _) = next(iter(self._done.items()))
            if forget_at >= now:
                break
            self._done.popitem(last=False)
        return out

    def _label(self, impression_id: str) -> Labelled:
        deadline, record, clicked = self._pending.pop(impression_id)
        self._done[impression_id] = (deadline + self.retention, clicked)
        if not clicked:
            self.counts["defaulted"] += 1
        return Labelled(impression_id, 1.0 if clicked else 0.0, deadline, record)


def label_batch(
    decided_at: np.ndarray, first_click_at: np.ndarray, window: float
) -> tuple[np.ndarray, np.ndarray]:
    """The same rule, vectorized, for impressions whose first click time is known (np.inf: no click).

    Returns (reward, labelled_at): reward 1 when the click is within the window, else 0; labelled at
    the deadline either way. Equivalent to MemoryJoin with the expiry sweep run continuously.
    """
    decided_at = np.asarray(decided_at, dtype=float)
    first_click_at = np.asarray(first_click_at, dtype=float)
    deadline = decided_at + window
    return (first_click_at <= deadline).astype(float), deadline
