"""What `MemoryJoin` does beyond the rule it shares with Redis (test_join_equivalence.py holds the two to
one rule): its arguments are checked, finished impressions are forgotten after `retention`, and the
sweep emits labels in deadline order whatever order impressions were logged or activated in."""

from __future__ import annotations

import pytest

from service.catalog import RewardSpec
from service.join.rule import Activation, ClickOutcome, MemoryJoin


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="window must be > 0"):
        MemoryJoin(0.0)
    join = MemoryJoin(10.0)
    join.impress("a", 0.0)
    with pytest.raises(ValueError, match="already used"):
        join.impress("a", 1.0, defer=True)
    with pytest.raises(ValueError, match="finite"):
        join.reward("a", float("inf"), None, 1.0)


def test_finished_impressions_are_forgotten_after_retention() -> None:
    join = MemoryJoin(10.0, retention=5.0)
    join.impress("shown", 0.0)
    join.impress("deferred", 0.0, defer=True)
    assert len(join.expire(10.5)) == 1  # "deferred" is counted never_shown
    assert join.click("shown", 12.0) == (ClickOutcome.LATE, None)
    assert join.activate(["deferred"], 12.0) == {"deferred": Activation.EXPIRED}
    join.expire(15.5)  # both deadlines were 10: remembered until 15
    assert join.click("shown", 16.0) == (ClickOutcome.UNKNOWN, None)
    assert join.activate(["deferred"], 16.0) == {"deferred": Activation.UNKNOWN}
    join.impress("shown", 20.0)  # a forgotten id may come again, as in Redis once its hash expired
    assert join.counts["never_shown"] == 1 and join.counts["unknown"] == 1


def test_labels_come_in_deadline_order() -> None:
    join = MemoryJoin(10.0)
    rule = RewardSpec(aggregate="sum", min=0.0, max=100.0)
    join.impress("late-logged", 5.0, reward=rule)
    join.impress("early-logged", 1.0, reward=rule)  # logged out of time order: allowed
    join.impress("deferred", 0.0, defer=True, reward=rule)
    assert join.activate(["deferred", "deferred"], 8.0) == {"deferred": Activation.ACTIVATED}
    assert join.reward("deferred", 2.0, "e", 9.0) == (ClickOutcome.RECORDED, None)
    assert join.reward("deferred", 3.0, None, 9.5) == (ClickOutcome.RECORDED, None)
    labels = join.expire(100.0)
    assert [(x.impression_id, x.reward, x.labelled_at) for x in labels] == [
        ("early-logged", 0.0, 11.0),
        ("late-logged", 0.0, 15.0),
        ("deferred", 5.0, 18.0),
    ]
    assert join.pending == 0
