"""Title leases: learners without `--title` split the catalog evenly, a dead learner's titles are taken
over within the lease TTL, and two learners that both believe they own a title still apply every event
once (the snapshot's position check refuses the stale publication). On one Redis and on a cluster."""

from __future__ import annotations

import time
from typing import Any

import pytest

from service.config import Settings
from service.learning.learner import Learner
from service.learning.leases import Leases
from service.store import catalog, keys
from tests.service.learning.test_learner import (
    DEADLINE_ONLY,
    T0,
    WINDOW,
    assert_same_state,
    drain,
    reference_book,
    serve,
    snapshot_fields,
    title,
)


@pytest.fixture()
def settings(store_server: Any) -> Settings:
    return Settings.load(
        {"redis_url": store_server.url, "attribution_window": WINDOW, "refresh_interval": 60.0}, environ={}
    )


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def no_publish(titles: set[str]) -> None:
    pass


def test_learners_split_the_titles_evenly_one_owner_each(store: Any) -> None:
    titles = [f"t{i}" for i in range(7)]
    learners = [Leases(store, ttl=30.0, owner=f"L{i}") for i in range(3)]
    for _ in range(3):  # the first tick of the first learner takes everything; later ticks rebalance
        for lease in learners:
            lease.tick(titles, no_publish)
    held = [lease.held for lease in learners]
    assert sorted(len(h) for h in held) == [2, 2, 3]
    assert set().union(*held) == set(titles)
    assert sum(len(h) for h in held) == len(titles)  # disjoint
    for lease in learners:
        for t in lease.held:
            assert store.get(keys.lease(t)) == lease.owner.encode()


def test_a_dead_learners_titles_are_taken_over_within_the_ttl(store: Any) -> None:
    titles = [f"t{i}" for i in range(4)]
    ttl = 1.0
    a, b = Leases(store, ttl=ttl, owner="A"), Leases(store, ttl=ttl, owner="B")
    a.tick(titles, no_publish)
    b.tick(titles, no_publish)
    a.tick(titles, no_publish)  # A sees two learners and hands half of its titles on
    b.tick(titles, no_publish)
    assert len(a.held) == len(b.held) == 2
    died = time.monotonic()  # A stops renewing: as if killed
    while len(b.held) < 4 and time.monotonic() - died < 3 * ttl:
        time.sleep(b.tick_interval)
        b.tick(titles, no_publish)
    taken_after = time.monotonic() - died
    assert b.held == set(titles)
    # within TTL + one tick, plus scheduling slack on a loaded machine
    assert taken_after < ttl + 2 * b.tick_interval + 1.0


def test_release_publishes_first_and_a_clean_exit_leaves_the_roll_call(store: Any) -> None:
    published: list[set[str]] = []
    a = Leases(store, ttl=30.0, owner="A")
    a.tick(["t1", "t2"], no_publish)
    a.release_all(published.append)
    assert published == [{"t1", "t2"}] and a.held == set()
    assert store.exists(keys.lease("t1"), keys.lease("t2")) == 0
    assert store.zcard(keys.learners()) == 0


@pytest.mark.parametrize("early", [False, True], ids=["deadline", "early_updates"])
def test_two_learners_both_owning_a_title_apply_every_event_once(
    store: Any, settings: Settings, early: bool
) -> None:
    """A is paused longer than its lease; B takes the title over and publishes; A resumes believing it
    still owns the title (its next renewal is not due yet), applies events and tries to publish: the
    position check refuses it, A reloads, and the snapshot holds every event exactly once."""
    cfg = title() if early else title(**DEADLINE_ONLY)
    catalog.save_title(store, cfg)
    a_clock = Clock()
    a = Learner(store, settings, leases=Leases(store, ttl=0.3, owner="A", clock=a_clock))
    a.step(now=T0)
    assert a.titles == ["t1"]
    serve(store, settings, 40, click_on="a")
    drain(a)  # applied in memory, not yet published
    time.sleep(0.5)  # A's lease lapses (A is paused: it does not tick)

    b = Learner(store, settings, leases=Leases(store, ttl=30.0, owner="B"))
    b.step(now=T0)
    assert b.titles == ["t1"]  # B took the lapsed lease and loaded the (empty) snapshot
    drain(b)
    assert b.publish() == 1

    serve(store, settings, 40, click_on="b")
    assert a.titles == ["t1"]  # A still believes it owns t1
    drain(a, now=T0 + 20 * WINDOW)
    assert a.publish() == 0  # refused: the stored position moved under it
    drain(b, now=T0 + 20 * WINDOW)
    assert b.publish() == 1
    a_clock.t = 100.0  # A's next tick: its renewal fails, it lets the title go
    a.step(now=T0 + 20 * WINDOW)
    assert a.titles == [] and a.leases is not None and a.leases.held == set()

    stored = snapshot_fields(store)
    assert int(stored["consumed"]) == int(stored["applied"]) == store.xlen(keys.labelled_stream("t1")) == 80
    assert_same_state(
        stored[keys.snapshot_bytes_field("default")],
        reference_book(store, cfg).snapshot(("t1", "default")),
        bookkeeping=not early,
    )
