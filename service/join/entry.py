"""One impression's entry in the in-memory join: the fields its hash holds in Redis (impress.lua) and the
states click.lua moves it through. `MemoryJoin` (service/join/rule.py) owns the transitions; an entry only
answers what its fields decide: its label, and whether a reward's event id was seen before."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.catalog import RewardSpec


class State(StrEnum):
    """An impression's state, spelled as the `s` field of its hash in Redis."""

    DEFERRED = "d"  # logged, not shown yet; its deadline is the activation deadline
    NEVER_SHOWN = "n"  # deferred, and not activated within a window of its decision (finished)
    PENDING = "p"  # shown, no reward yet
    REWARDED = "c"  # shown, rewarded within its window, label not emitted yet
    LABELLED_REWARDED = "C"  # labelled with its reward (finished)
    LABELLED = "x"  # labelled 0, clipped (finished)


@dataclass(slots=True)
class Entry:
    deadline: float  # shown at + window (deferred: decided at + window, the activation deadline)
    record: Any  # the caller's, returned with the label
    state: State
    rule: RewardSpec | None  # the title's reward rule; None: clicks (first, clipped to [0, 1])
    seq: int = 0  # which of its entries in MemoryJoin's due heap is current (activation adds one)
    value: float = 0.0  # the reward aggregate, once rewarded
    events: set[str] | None = None  # event ids seen, under sum/max (allocated on the first one)

    @property
    def aggregate(self) -> str:
        return "first" if self.rule is None else self.rule.aggregate

    @property
    def rewarded(self) -> bool:
        return self.state in (State.REWARDED, State.LABELLED_REWARDED)

    def label(self) -> float:
        """The aggregate, or 0 when unrewarded, clipped to the rule's bounds."""
        lo, hi = (0.0, 1.0) if self.rule is None else (self.rule.min, self.rule.max)
        return min(max(self.value if self.rewarded else 0.0, lo), hi)

    def seen_before(self, event: str) -> bool:
        """Whether a reward's event id was seen before, remembering it. Under sum/max only (under `first`
        any second reward is a duplicate anyway); a reward without an event id ('') is never one."""
        if self.aggregate == "first" or not event:
            return False
        if self.events is None:
            self.events = set()
        elif event in self.events:
            return True
        self.events.add(event)
        return False
