"""On a Redis Cluster under HTTP load: kill -9 a master (its replica takes over) and kill -9 a learner
(another takes its titles by lease). Every answer is reconciled with the cluster afterwards: nothing
doubled, acknowledged-then-lost within the bound asynchronous replication allows, the same API workers
and learners carry on, and the titles of other shards never fall back. The long form with the numbers
is bench/cluster_failover.py (docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.cluster_failover import run_learner_takeover, run_master_failover, titles_one_per_master
from tests.faults.cluster_stack import ClusterServiceStack
from tests.faults.load import LoadPlan
from tests.faults.stack import StackSettings

# A 250 ms socket timeout instead of the default 50 ms: on this shared 2-core machine a healthy shard
# sometimes stalls 50 ms, and what is measured here is the failover, not that budget.
SETTINGS = StackSettings(
    workers=2, appendfsync="everysec", attribution_window=2.0, snapshot_interval=0.5,
    extra_env=(("ARTBANDIT_REDIS_TIMEOUT", "0.25"),),
)  # fmt: skip
LEASE_TTL = 3.0


def plan(title_id: str, seed: int, impressions: int = 300, rate: float = 40.0) -> LoadPlan:
    return LoadPlan(
        title_id,
        impressions=impressions,
        rate=rate,
        click_probability=0.35,
        max_click_delay=1.0,
        duplicate_probability=0.15,
        threads=3,
        max_duration=60.0,
        seed=seed,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServiceStack]:
    with ClusterServiceStack(tmp_path_factory.mktemp("cluster-faults"), SETTINGS, lease_ttl=LEASE_TTL) as s:
        yield s


@pytest.mark.slow
def test_kill_9_a_master_under_load(stack: ClusterServiceStack) -> None:
    titles = titles_one_per_master(stack, "fo")
    run = run_master_failover(stack, [plan(t, seed=20 + i, impressions=400) for i, t in enumerate(titles)])
    summary = {t: o.summary() for t, o in run.titles.items()}
    print(f"\nfailover: promoted after {run.promoted_after:.2f} s; {summary}")
    assert run.workers_after == run.workers_before  # no worker restarted
    assert run.learners_alive == len(stack.learners)
    victim = run.titles[run.victim]
    for title_id, outcome in run.titles.items():
        rec = outcome.reconciliation
        assert rec.doubled == 0, rec.problems
        assert rec.numbers["server errors"] == 0
        if title_id != run.victim:
            # other shards serve on: a worker does not stop using Redis for every title when one shard
            # fails (a few fallbacks remain possible: a 50 ms socket timeout on a loaded 2-core machine)
            assert outcome.fallbacks <= victim.fallbacks / 5, (title_id, outcome.fallbacks)
            assert rec.lost == 0 and not rec.problems, (title_id, rec.problems)
    # Acknowledged then lost: only what the master had acknowledged and not yet sent to its replica. On
    # loopback the replica trails by well under a millisecond; allow the writes of 100 ms at the rate.
    assert victim.reconciliation.lost <= 0.1 * 40 * 1.4
    # the outage of the victim's titles is the promotion, plus one breaker cooldown and slot refresh
    assert 0 < victim.fallbacks and victim.fallback_span < run.promoted_after + 2.0
    assert victim.logged_after > 20  # served again after the promotion, by the same workers


@pytest.mark.slow
def test_kill_9_a_learner_its_titles_are_taken_over(stack: ClusterServiceStack) -> None:
    titles = [f"lt-{i}" for i in range(6)]
    plans = [plan(t, seed=40 + i, impressions=160, rate=20.0) for i, t in enumerate(titles)]
    run = run_learner_takeover(stack, plans)
    print(
        f"\nlearner takeover: pid {run.killed_pid} held {run.titles_of_killed}; new owners after "
        f"{run.taken_over_after:.2f} s, snapshots after {run.snapshots_after:.2f} s"
    )
    assert run.titles_of_killed  # it held titles
    tick = min(0.5, LEASE_TTL / 3)
    assert run.taken_over_after <= LEASE_TTL + tick + 1.0  # TTL + one tick + scheduling slack
    assert run.snapshots_after <= LEASE_TTL + tick + SETTINGS.snapshot_interval + 1.0
    for title_id, outcome in run.titles.items():
        rec = outcome.reconciliation
        assert not rec.problems, (title_id, rec.problems)
        assert rec.lost == 0 and rec.doubled == 0
