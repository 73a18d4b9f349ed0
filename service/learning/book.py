"""The learner's core, free of Redis: apply labelled events to the policy of each (title, variant) and
decide when to publish a snapshot. The Redis learner (`service/learning/learner.py`) and the in-process
simulator (`simulator/`) both drive this class, so there is one learning logic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from policies import Policy
from service.store.records import LabelledEvent

PolicyKey = tuple[str, str]  # (title_id, variant)


@dataclass
class PolicyBook:
    """The live (learning) policies, keyed by (title, variant), with counts of what was applied."""

    policies: dict[PolicyKey, Policy] = field(default_factory=dict)
    applied: int = 0
    decided: int = 0  # decisions entered early (policies with early_updates)
    rewarded: int = 0  # rewards applied early (clicks as they arrive)
    skipped: dict[str, int] = field(default_factory=lambda: {"no_policy": 0, "unknown_arm": 0, "invalid": 0})

    def apply(self, event: LabelledEvent) -> bool:
        """Learn one labelled event. Events for a removed policy or artwork are counted and skipped."""
        policy = self.policies.get((event.title_id, event.variant))
        if policy is None:
            self.skipped["no_policy"] += 1
            return False
        if event.artwork_id not in policy.arms:
            self.skipped["unknown_arm"] += 1
            return False
        try:
            policy.learn(event.context, event.artwork_id, event.reward, event.propensity)
        except ValueError:
            # e.g. a feature dropped from the title's schema after the decision was logged
            self.skipped["invalid"] += 1
            return False
        self.applied += 1
        return True

    def apply_all(self, events: Iterable[LabelledEvent]) -> int:
        return sum(self.apply(e) for e in events)

    def apply_batch(
        self,
        key: PolicyKey,
        contexts: np.ndarray,
        arms: np.ndarray,
        rewards: np.ndarray,
        propensities: np.ndarray,
    ) -> int:
        """Learn n events of one policy at once, in order (contexts in the policy's feature order)."""
        self.policies[key].learn_batch(contexts, arms, rewards, propensities)
        self.applied += len(rewards)
        return len(rewards)

    def apply_decided_batch(self, key: PolicyKey, contexts: np.ndarray, arms: np.ndarray) -> int:
        """Early updates: n decisions of one policy enter its statistics when made (reward pending)."""
        self.policies[key].learn_decided_batch(contexts, arms)
        self.decided += len(arms)
        return len(arms)

    def apply_reward_batch(
        self, key: PolicyKey, contexts: np.ndarray, arms: np.ndarray, rewards: np.ndarray
    ) -> int:
        """Early updates: rewards of n decisions already entered (clicks as they arrive)."""
        self.policies[key].learn_reward_batch(contexts, arms, rewards)
        self.rewarded += len(arms)
        return len(arms)

    def snapshot(self, key: PolicyKey) -> bytes:
        return self.policies[key].to_bytes()


@dataclass
class SnapshotClock:
    """Publish every `interval` seconds of the caller's clock."""

    interval: float
    last: float = -np.inf

    def due(self, now: float) -> bool:
        if now - self.last >= self.interval:
            self.last = now
            return True
        return False
