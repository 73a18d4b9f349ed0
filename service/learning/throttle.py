"""The per-viewer cap on learned rewards: abuse that client keys cannot stop.

A compromised or buggy backend holds a valid client key; flooding one viewer's impressions with clicks
(or rewards) would teach the policy whatever it likes. `ViewerThrottle.admit` lets at most `cap`
rewarded events per (title, viewer, minute of the decision) through to learning; the rest are
`throttled`: counted in learner health, never learned.

Decisions:
- Only events with a reward count and are throttled. Unrewarded impressions are not the attacker's
  choice of artwork (the policy chose it), so they cannot steer the policy toward one artwork; capping
  them would drop honest zeros and bias every estimate upward.
- The minute is that of the decision (`decided_at`): the labelled event carries no click time, and a
  flood decides and clicks within moments.
- Events without a viewer (labelled before the viewer was in the label payload) are never throttled.
- Counts are kept in memory for the last `KEEP_MINUTES` minutes per title. After a learner restart,
  events replayed from the last snapshot's position are counted afresh: a viewer can get at most one
  more `cap` learned in the minute of the restart. Events more than `KEEP_MINUTES` out of order (a
  deferred decision activated much later) start a fresh count for their minute.
"""

from __future__ import annotations

from collections import Counter

from service.store.records import LabelledEvent

KEEP_MINUTES = 3  # minutes of counts kept per title, behind the newest minute seen


class ViewerThrottle:
    """`admit(event)`: False when the event is over its viewer's cap (and must not be learned)."""

    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError(f"cap must be >= 0 (0: no cap), got {cap!r}")
        self.cap = cap
        self._counts: dict[str, dict[int, Counter[str]]] = {}  # title -> minute -> viewer -> rewards
        self._newest: dict[str, int] = {}

    def admit(self, event: LabelledEvent) -> bool:
        if not self.cap or not event.reward or not event.user_id:
            return True
        title, minute = event.title_id, int(event.decided_at // 60)
        minutes = self._counts.setdefault(title, {})
        if minute > self._newest.get(title, minute - 1):
            self._newest[title] = minute
            for old in [m for m in minutes if m < minute - KEEP_MINUTES]:
                del minutes[old]
        viewers = minutes.setdefault(minute, Counter())
        viewers[event.user_id] += 1
        return viewers[event.user_id] <= self.cap

    def forget(self, title_id: str) -> None:
        self._counts.pop(title_id, None)
        self._newest.pop(title_id, None)
