"""Failover under load on a Redis Cluster, measured, and a learner's titles taken over by lease.

`run_master_failover`: one title per master, each driven by its own `LoadPlan` (impressions plus
delayed, duplicate and late clicks); once a third of the impressions went out, the master of the victim
title (never the node the URL names) gets SIGKILL and its replica is promoted after the cluster's node
timeout. Afterwards every title is reconciled (tests/faults/reconcile.py). Reported: how long the
promotion took, the fallback answers per title and the seconds they spanned, what was acknowledged and
then lost (replication is asynchronous: what the master acknowledged and had not yet sent to its
replica), doubled (must be 0), and whether the same API workers and learners carried on.

`run_learner_takeover`: two learners share the titles by lease; one gets SIGKILL while the load runs;
reported: seconds until each of its titles had a new lease owner, and until their snapshots moved on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from service.store import keys
from tests.faults.cluster_stack import ClusterServiceStack
from tests.faults.load import LoadGenerator, LoadPlan, LoadResult
from tests.faults.reconcile import Reconciliation, reconcile, wait_settled
from tests.faults.scenario import TITLE


def titles_one_per_master(stack: ClusterServiceStack, prefix: str) -> list[str]:
    """One title id per master; the first one's master is not the node the URL names (the victim)."""
    url_port = stack.cluster.nodes[0].port
    by_port: dict[int, str] = {}
    for i in range(1000):
        title_id = f"{prefix}-{i}"
        port = stack.master_port_of(title_id)
        by_port.setdefault(port, title_id)
        if len(by_port) == stack.cluster.masters:
            break
    victim = next(t for p, t in by_port.items() if p != url_port)
    return [victim, *sorted(t for t in by_port.values() if t != victim)]


@dataclass
class TitleOutcome:
    title_id: str
    result: LoadResult
    reconciliation: Reconciliation
    fallbacks: int
    fallback_span: float  # seconds from the first fallback answer sent to the last one answered
    logged_after: int  # impressions logged that were sent after the last fallback answer

    def summary(self) -> dict[str, Any]:
        n = self.reconciliation.numbers
        return {
            "impressions logged": n.get("impressions logged"),
            "fallback answers": self.fallbacks,
            "fallback seconds": round(self.fallback_span, 2),
            "logged after the outage": self.logged_after,
            "clicks recorded": n.get("clicks recorded"),
            "clicks unanswered or 5xx": n.get("clicks unanswered or 5xx"),
            "lost impressions": n.get("lost impressions"),
            "lost clicks": n.get("lost clicks"),
            "doubled": self.reconciliation.doubled,
        }


@dataclass
class FailoverRun:
    victim: str
    killed_port: int
    promoted_after: float
    titles: dict[str, TitleOutcome]
    workers_before: list[int]
    workers_after: list[int]
    learners_alive: int
    facts: dict[str, Any] = field(default_factory=dict)


def _fallbacks(result: LoadResult) -> tuple[int, float, int]:
    """(fallback answers, seconds they spanned, impressions logged after the last one)."""
    fb = [a for a in result.answers if a.kind == "impression" and a.status == 200 and not a.logged]
    if not fb:
        return 0, 0.0, sum(1 for a in result.answers if a.logged)
    last = max(a.sent_at for a in fb)
    after = sum(1 for a in result.answers if a.logged and a.sent_at > last)
    return len(fb), max(a.sent_at + a.elapsed for a in fb) - min(a.sent_at for a in fb), after


def _run_load(
    stack: ClusterServiceStack, plans: list[LoadPlan], inject: Any, settle_timeout: float
) -> tuple[dict[str, LoadResult], dict[str, Reconciliation], Any]:
    for plan in plans:
        stack.put_title(plan.title_id, TITLE)
    gens = [LoadGenerator(stack.base_url, plan).start() for plan in plans]
    try:
        first = plans[0]
        while gens[0].sent < first.impressions // 3:
            time.sleep(0.01)
        facts = inject()
    finally:
        results = {plan.title_id: gen.wait() for plan, gen in zip(plans, gens, strict=True)}
    recs = {}
    r = stack.client()
    try:
        for plan in plans:
            view = wait_settled(r, plan.title_id, settle_timeout)  # type: ignore[arg-type]
            recs[plan.title_id] = reconcile(results[plan.title_id].answers, view, settled=True)
    finally:
        r.close()
    return results, recs, facts


def run_master_failover(
    stack: ClusterServiceStack, plans: list[LoadPlan], settle_timeout: float = 60.0
) -> FailoverRun:
    """`plans[0]` is the victim's (see `titles_one_per_master`)."""
    victim = plans[0].title_id
    workers_before = sorted(stack.worker_pids())
    promoted: dict[str, float] = {}

    def inject() -> dict[str, Any]:
        port = stack.kill_master_of(victim)
        promoted["after"] = stack.wait_promoted(victim, port)
        return {"killed port": port}

    results, recs, facts = _run_load(stack, plans, inject, settle_timeout)
    titles = {t: TitleOutcome(t, results[t], recs[t], *_fallbacks(results[t])) for t in results}
    return FailoverRun(
        victim=victim,
        killed_port=facts["killed port"],
        promoted_after=promoted["after"],
        titles=titles,
        workers_before=workers_before,
        workers_after=sorted(stack.worker_pids()),
        learners_alive=sum(1 for p in stack.learners if p.poll() is None),
    )


@dataclass
class TakeoverRun:
    killed_pid: int
    titles_of_killed: list[str]
    taken_over_after: float  # seconds until every title of the killed learner had another owner
    snapshots_after: float  # seconds until every such title's snapshot was published again
    titles: dict[str, TitleOutcome]


def run_learner_takeover(
    stack: ClusterServiceStack, plans: list[LoadPlan], settle_timeout: float = 60.0
) -> TakeoverRun:
    titles = [p.title_id for p in plans]
    state: dict[str, Any] = {}
    done = threading.Event()

    def inject() -> dict[str, Any]:
        owners = stack.lease_owners(titles)
        victim_index = next(i for i, p in enumerate(stack.learners) if p.poll() is None)
        pid = stack.learners[victim_index].pid
        mine = sorted(t for t, o in owners.items() if o is not None and f":{pid}:" in o)
        stack.kill_learner_at(victim_index)
        killed_at_wall = time.time()
        killed_at = time.monotonic()
        state.update(pid=pid, mine=mine)
        taken = snapshots = None
        r = stack.client()
        try:
            while time.monotonic() - killed_at < 60:
                now = time.monotonic() - killed_at
                owners = stack.lease_owners(mine)
                if taken is None and all(o is not None and f":{pid}:" not in o for o in owners.values()):
                    taken = now
                published = [r.hget(keys.snapshot(t), "published_at") for t in mine]
                if snapshots is None and all(p is not None and float(p) > killed_at_wall for p in published):
                    snapshots = now
                if taken is not None and snapshots is not None:
                    break
                time.sleep(0.05)
        finally:
            r.close()
        state.update(taken=taken, snapshots=snapshots)
        done.set()
        return {}

    results, recs, _ = _run_load(stack, plans, inject, settle_timeout)
    outcomes = {t: TitleOutcome(t, results[t], recs[t], *_fallbacks(results[t])) for t in results}
    return TakeoverRun(
        killed_pid=state["pid"],
        titles_of_killed=state["mine"],
        taken_over_after=state["taken"] if state["taken"] is not None else float("inf"),
        snapshots_after=state["snapshots"] if state["snapshots"] is not None else float("inf"),
        titles=outcomes,
    )
