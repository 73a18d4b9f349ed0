"""The join: how an impression gets its one label. This module owns the rule; `MemoryJoin` executes it in
process memory (the in-process simulator, the soak test), `RedisJoin` (service/join/redis_join.py) executes
it atomically inside Redis with the scripts in service/store/lua/. A property-based test
(tests/service/join/test_join_equivalence.py) feeds random interleavings of everything below to both and
requires identical outcomes, labels and counters.

Each shown impression ends exactly one way, and always at its deadline (shown at + attribution window):
- if it was rewarded at or before the deadline, it is labelled with its reward ("clicked");
- otherwise it is labelled 0 ("defaulted");
- the label is clipped to the title's reward bounds, [0, 1] for a title without a reward config;
- the label is emitted once, by the expiry sweep (or by a reward arriving after the deadline before the
  sweep got there: it performs the expiry first).

Rewards, answered at once. A click is a reward of 1 with the event id "click". How the rewards of one
impression combine is the title's reward rule (`RewardSpec`; none: `first` over [0, 1]):
- `first`: the first reward within the window is "recorded", any further one a "duplicate";
- `sum` / `max`: every reward within the window is "recorded" and added (or the largest kept), except a
  repeated event id, which is a "duplicate" (rewards without an event id always count);
- a reward after the deadline is "late" (counted, never learned), or a "duplicate" if the impression was
  rewarded under `first`, or its event id was seen before (under sum/max late event ids are remembered
  too, so the retry of a late reward is a "duplicate");
- a reward on an id never seen (or long forgotten) is "unknown".

Deferred impressions (a page row the viewer may never scroll to) are logged but count nowhere until shown:
- `activate` shows one: "activated", its impression counted and its window starting now; "already_active"
  if it was shown already (activated, rewarded, or never deferred); "unknown" if never seen;
- one not shown within a window of its decision is "expired" and counted `never_shown`, by the sweep or by
  the activation that came too late; it is never labelled, so never learned;
- a reward on a deferred impression activates it first (the viewer evidently saw it) and is then judged;
  if its activation window has passed it is "late", and the impression is counted `never_shown`.

Why labels wait for the deadline even for clicks: a learner that sees clicks immediately but
non-clicks only a window later over-credits every artwork it showed recently, and the more it shows
one, the more it over-credits it. Waiting costs one window of learning delay and removes the bias
(measured by bench/label_timing.py; numbers in docs/benchmarks.md, "Labels at the deadline").
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from service.catalog import RewardSpec
from service.join.entry import Entry, State


class ClickOutcome(StrEnum):
    """What POST /click and POST /reward answer (service/store/lua/click.lua)."""

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


# the join counters, as the scripts name them in the title's join hash (keys.join_counters); the
# scripts' `lost` (a hash that outlived its TTL while pending) has no counterpart: memory forgets nothing
# that is still pending
COUNTERS = (
    "impressions", "clicked", "defaulted", "duplicate", "late", "unknown", "labelled",
    "deferred", "activated", "never_shown",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Labelled:
    """One impression's final label, emitted exactly once."""

    impression_id: str
    reward: float
    labelled_at: float
    record: Any  # whatever the caller stored with the impression (the decision record)


class MemoryJoin:
    """The join rule in memory. Times are seconds on any clock the caller chooses. Finished impressions
    (labelled or never shown) are remembered for `retention` seconds after their deadline, as Redis keeps
    them by TTL; a reward or activation after that finds an "unknown" id."""

    def __init__(self, window: float, retention: float | None = None) -> None:
        if not window > 0:
            raise ValueError(f"attribution window must be > 0 seconds, got {window!r}")
        self.window = float(window)
        self.retention = float(window if retention is None else retention)
        self._live: dict[str, Entry] = {}  # deferred or pending: Redis's pending set
        self._done: dict[str, Entry] = {}  # finished, until forgotten
        self._due: list[tuple[float, int, str]] = []  # heap of (deadline, seq, id); stale seqs skipped
        self._forget: list[tuple[float, str]] = []  # heap of (forget at, id) of finished impressions
        self._seq = 0
        self.counts = dict.fromkeys(COUNTERS, 0)

    @property
    def pending(self) -> int:
        """Impressions not finished yet (deferred ones included, as in Redis's pending set)."""
        return len(self._live)

    def impress(
        self,
        impression_id: str,
        decided_at: float,
        record: Any = None,
        defer: bool = False,
        reward: RewardSpec | None = None,
    ) -> None:
        """Open an impression's join entry. `defer`: logged, shown only once activated (or rewarded).
        `reward`: the title's reward rule (None: clicks). `record` comes back with the label."""
        if impression_id in self._live or impression_id in self._done:
            raise ValueError(f"impression id {impression_id!r} was already used")
        state = State.DEFERRED if defer else State.PENDING
        self._schedule(impression_id, Entry(decided_at + self.window, record, state, reward, 0))
        self.counts["deferred" if defer else "impressions"] += 1

    def activate(self, impression_ids: Iterable[str], at: float) -> dict[str, Activation]:
        """Show deferred impressions; one answer per id (an id given twice is answered once)."""
        return {i: self._activate(i, at) for i in dict.fromkeys(impression_ids)}

    def click(self, impression_id: str, at: float) -> tuple[ClickOutcome, Labelled | None]:
        """The click's outcome, and the label if this click performed an overdue expiry."""
        return self._judge(impression_id, 1.0, "click", at)

    def reward(
        self, impression_id: str, value: float, event_id: str | None, at: float
    ) -> tuple[ClickOutcome, Labelled | None]:
        """A graded reward's outcome under the impression's reward rule, and the label if this reward
        performed an overdue expiry. `event_id` (None: none) makes retries of sum/max rewards duplicates."""
        if not math.isfinite(value):
            raise ValueError(f"a reward must be a finite number, got {value!r}")
        return self._judge(impression_id, float(value), event_id or "", at)

    def expire(self, now: float) -> list[Labelled]:
        """Finish every impression whose deadline is before `now`, earliest first (ties in the order they
        were shown): label the shown ones, count deferred ones never shown. Returns the labels."""
        out = []
        while self._due and self._due[0][0] < now:
            _, seq, impression_id = heapq.heappop(self._due)
            entry = self._live.get(impression_id)
            if entry is None or entry.seq != seq:  # finished already, or activated since
                continue
            if entry.state is State.DEFERRED:
                self._never_shown(impression_id)
            else:
                out.append(self._label(impression_id))
        while self._forget and self._forget[0][0] < now:
            self._done.pop(heapq.heappop(self._forget)[1], None)
        return out

    # ---------------------------------------------------------------------------------- transitions
    def _activate(self, impression_id: str, at: float) -> Activation:
        entry = self._live.get(impression_id) or self._done.get(impression_id)
        if entry is None:
            return Activation.UNKNOWN
        if entry.state is State.NEVER_SHOWN:
            return Activation.EXPIRED
        if entry.state is not State.DEFERRED:
            return Activation.ALREADY_ACTIVE
        if at > entry.deadline:
            self._never_shown(impression_id)
            return Activation.EXPIRED
        self._show(impression_id, entry, at)
        return Activation.ACTIVATED

    def _judge(
        self, impression_id: str, value: float, event: str, at: float
    ) -> tuple[ClickOutcome, Labelled | None]:
        entry = self._live.get(impression_id) or self._done.get(impression_id)
        if entry is None:
            return self._count(ClickOutcome.UNKNOWN), None
        if entry.state is State.DEFERRED:  # evidently shown: activate it first, if still possible
            if at > entry.deadline:
                self._never_shown(impression_id)
                return self._count(ClickOutcome.LATE), None
            self._show(impression_id, entry, at)
        elif entry.state is State.NEVER_SHOWN:
            return self._count(ClickOutcome.LATE), None
        labelled = None
        if impression_id in self._live:
            if at <= entry.deadline:
                return self._within(entry, value, event), None
            labelled = self._label(impression_id)  # overdue, not swept yet: the expiry happens first
        rewarded_first = entry.state is State.LABELLED_REWARDED and entry.aggregate == "first"
        if rewarded_first or entry.seen_before(event):
            return self._count(ClickOutcome.DUPLICATE), labelled
        return self._count(ClickOutcome.LATE), labelled

    def _within(self, entry: Entry, value: float, event: str) -> ClickOutcome:
        """A reward within the window of a shown impression."""
        if entry.state is State.REWARDED:
            if entry.aggregate == "first" or entry.seen_before(event):
                return self._count(ClickOutcome.DUPLICATE)
            if entry.aggregate == "sum":
                entry.value += value
            elif value >= entry.value:  # max
                entry.value = value
            return ClickOutcome.RECORDED
        entry.seen_before(event)  # remember the first event id too
        entry.state, entry.value = State.REWARDED, value
        self.counts["clicked"] += 1
        return ClickOutcome.RECORDED

    def _show(self, impression_id: str, entry: Entry, at: float) -> None:
        entry.state, entry.deadline = State.PENDING, at + self.window
        self._schedule(impression_id, entry)
        self.counts["impressions"] += 1
        self.counts["activated"] += 1

    def _never_shown(self, impression_id: str) -> None:
        entry = self._live.pop(impression_id)
        entry.state = State.NEVER_SHOWN
        self._finish(impression_id, entry)
        self.counts["never_shown"] += 1

    def _label(self, impression_id: str) -> Labelled:
        entry = self._live.pop(impression_id)
        if entry.state is State.REWARDED:
            entry.state = State.LABELLED_REWARDED
        else:
            entry.state = State.LABELLED
            self.counts["defaulted"] += 1
        self.counts["labelled"] += 1
        self._finish(impression_id, entry)
        return Labelled(impression_id, entry.label(), entry.deadline, entry.record)

    def _schedule(self, impression_id: str, entry: Entry) -> None:
        self._seq += 1
        entry.seq = self._seq
        self._live[impression_id] = entry
        heapq.heappush(self._due, (entry.deadline, entry.seq, impression_id))

    def _finish(self, impression_id: str, entry: Entry) -> None:
        self._done[impression_id] = entry
        heapq.heappush(self._forget, (entry.deadline + self.retention, impression_id))

    def _count(self, outcome: ClickOutcome) -> ClickOutcome:
        self.counts[outcome.value] += 1
        return outcome


def label_batch(
    decided_at: np.ndarray, first_click_at: np.ndarray, window: float
) -> tuple[np.ndarray, np.ndarray]:
    """The click rule, vectorized, for impressions shown at decision time whose first click time is known
    (np.inf: no click).

    Returns (reward, labelled_at): reward 1 when the click is within the window, else 0; labelled at
    the deadline either way. Equivalent to MemoryJoin with the expiry sweep run continuously.
    """
    decided_at = np.asarray(decided_at, dtype=float)
    first_click_at = np.asarray(first_click_at, dtype=float)
    deadline = decided_at + window
    return (first_click_at <= deadline).astype(float), deadline
