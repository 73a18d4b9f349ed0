"""One fault under load, end to end: create a title, drive it with a `LoadPlan`, inject the fault once part
of the impressions went out, let every deadline pass and the learner catch up, then reconcile.

    run = run_fault(stack, "api-worker", plan)
    assert not run.reconciliation.problems

The faults (`FAULTS`, by name) are what production sees: a worker OOM-killed, a learner crashing, Redis
restarted by its supervisor (clean stop) or crashing (SIGKILL). Used by tests/faults/ and bench/faults.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.faults.load import LoadGenerator, LoadPlan, LoadResult, page_titles
from tests.faults.reconcile import Reconciliation, reconcile, wait_settled
from tests.faults.stack import ServiceStack

TITLE: dict[str, Any] = {
    "features": ["romance", "horror"],
    "artworks": [
        {"id": "kiss", "features": {"romance": 1.0}},
        {"id": "scream", "features": {"horror": 1.0}},
        {"id": "plain"},
    ],
    "experiment": {
        "variants": [
            {"name": "ucb", "weight": 1, "policy": {"name": "linucb"}},
            {"name": "greedy", "weight": 1, "policy": {"name": "epsilon_greedy"}},
        ]
    },
}

# Graded rewards: summed (a click is 1), bounded far above what the load sends, so a label is the sum.
GRADED_TITLE: dict[str, Any] = {**TITLE, "reward": {"aggregate": "sum", "min": 0, "max": 1000}}

Facts = dict[str, Any]


def kill_api_worker(stack: ServiceStack) -> Facts:
    """kill -9 one gunicorn worker; the master forks a replacement."""
    before = stack.worker_pids()
    victim = stack.kill_worker()
    after = stack.wait_workers(victim)
    return {"killed": victim, "workers before": before, "workers after": after}


def restart_learner(stack: ServiceStack, pause: float = 0.5) -> Facts:
    """kill -9 the learner; start a new one after `pause` seconds (events pile up meanwhile)."""
    stack.kill_learner()
    time.sleep(pause)
    stack.start_learner()
    return {"learner starts": stack.learner_starts}


def restart_redis(stack: ServiceStack, downtime: float = 2.0) -> Facts:
    """Stop Redis cleanly (SIGTERM: it flushes and fsyncs the AOF), restart it on the same port and data."""
    stack.stop_redis()
    time.sleep(downtime)
    stack.start_redis()
    return {"downtime s": downtime}


def crash_redis(stack: ServiceStack, downtime: float = 1.0) -> Facts:
    """kill -9 redis-server (no final flush), restart it on the same port and data after `downtime`."""
    stack.kill_redis()
    time.sleep(downtime)
    stack.start_redis()
    return {"downtime s": downtime}


FAULTS: dict[str, Callable[[ServiceStack], Facts]] = {
    "api-worker": kill_api_worker,
    "learner": restart_learner,
    "redis-stop": restart_redis,
    "redis-kill9": crash_redis,
}


@dataclass
class FaultRun:
    fault: str
    title_id: str
    result: LoadResult
    reconciliation: Reconciliation
    facts: list[Facts] = field(default_factory=list)  # one per injection
    fault_at: list[float] = field(default_factory=list)  # seconds into the load, per injection


def run_fault(
    stack: ServiceStack,
    fault: str,
    plan: LoadPlan,
    at: tuple[float, ...] = (1 / 3,),
    settle_timeout: float = 30.0,
) -> FaultRun:
    """Create `plan.title_id` (and a page's other titles), run the load, inject `fault` once each fraction
    `at` of the impressions went out, then wait for every deadline and the learner, and reconcile every
    title (numbers summed over a page's titles; problems name their title)."""
    inject = FAULTS[fault]
    graded = plan.reward_probability > 0
    titles = page_titles(plan)
    for title_id in titles:
        stack.put_title(title_id, GRADED_TITLE if graded else TITLE)
    gen = LoadGenerator(stack.base_url, plan).start()
    facts: list[Facts] = []
    fault_at: list[float] = []
    try:
        deadline = time.monotonic() + plan.max_duration
        for fraction in sorted(at):
            while gen.sent < int(plan.impressions * fraction):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {gen.sent} impressions went out in {plan.max_duration:g} s")
                time.sleep(0.01)
            fault_at.append(gen.elapsed())
            facts.append(inject(stack))
    finally:
        result = gen.wait()
    r = stack.client()
    try:
        views = [wait_settled(r, title_id, settle_timeout) for title_id in titles]
    finally:
        r.close()
    rec = Reconciliation()
    for title_id, view in zip(titles, views, strict=True):
        one = reconcile(result.answers, view, settled=True, graded=graded)
        rec.problems += [f"{title_id}: {p}" for p in one.problems]
        for name, value in one.numbers.items():
            rec.numbers[name] = rec.numbers.get(name, 0) + value
    return FaultRun(fault, plan.title_id, result, rec, facts, fault_at)
