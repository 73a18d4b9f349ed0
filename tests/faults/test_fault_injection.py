"""Faults under load: `artbandit serve` (gunicorn, 2 workers) + `artbandit learn` + Redis with AOF, fed
impressions and delayed clicks over HTTP. During each run one thing breaks — an API worker is killed with
SIGKILL, the learner is killed and restarted, Redis is stopped for two seconds and restarted on its AOF —
and afterwards every answer is reconciled with Redis (tests/faults/reconcile.py): nothing acknowledged
is lost, nothing is counted twice, and the learner applied each labelled event once.

Each fault gets its own title, so each reconciliation sees exactly its own traffic. The longer form,
with more traffic and repeated faults, is bench/faults.py; numbers in docs/reliability.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.load import LoadPlan
from tests.faults.scenario import FaultRun, run_fault
from tests.faults.stack import ServiceStack, StackSettings

SETTINGS = StackSettings(workers=2, appendfsync="everysec", attribution_window=2.0, snapshot_interval=0.2)
IMPRESSIONS = 450
RATE = 90.0  # impressions per second (plus ~40% as many clicks)


def plan(title_id: str, seed: int) -> LoadPlan:
    return LoadPlan(
        title_id,
        impressions=IMPRESSIONS,
        rate=RATE,
        click_probability=0.35,
        max_click_delay=1.0,
        duplicate_probability=0.15,
        late_probability=0.05,
        late_delay=SETTINGS.attribution_window + 1.0,
        max_duration=60.0,
        seed=seed,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with ServiceStack(tmp_path_factory.mktemp("faults"), SETTINGS) as s:
        yield s


def check(stack: ServiceStack, run: FaultRun) -> None:
    rec = run.reconciliation
    print(f"\n{run.fault}: {rec.numbers}")
    assert not rec.problems, "\n".join(rec.problems) + "\n" + stack.logs()[-4000:]
    assert rec.lost == 0 and rec.doubled == 0
    # real traffic, with every click path taken
    counts = run.result.counts()
    assert run.result.unsent == 0, counts
    assert rec.numbers["clicks recorded"] > 20 and counts["click duplicate"] > 0, counts
    assert counts["click 410"] > 0 and rec.numbers["labelled defaulted"] > 20, counts


@pytest.mark.slow
def test_kill_9_api_worker(stack: ServiceStack) -> None:
    run = run_fault(stack, "api-worker", plan("fault-worker", seed=11))
    (facts,) = run.facts
    killed, after = facts["killed"], facts["workers after"]
    assert killed in facts["workers before"] and killed not in after and len(after) == SETTINGS.workers
    check(stack, run)


@pytest.mark.slow
def test_kill_9_learner_and_restart(stack: ServiceStack) -> None:
    starts = stack.learner_starts
    run = run_fault(stack, "learner", plan("fault-learner", seed=12))
    assert stack.learner_starts == starts + 1
    check(stack, run)


@pytest.mark.slow
def test_redis_stopped_and_restarted_on_its_aof(stack: ServiceStack) -> None:
    run = run_fault(stack, "redis-stop", plan("fault-redis", seed=13))
    check(stack, run)
    # the outage was felt and handled as documented: fallback answers, clicks told to retry (503)
    counts = run.result.counts()
    assert run.reconciliation.numbers["impressions fallback"] > 0, counts
    assert counts["click 503"] + counts["click no answer"] > 0, counts
    assert run.reconciliation.numbers["clicks retried"] > 0, counts


# ------------------------------------------------------------------ pages, /activate and /reward
PAGES = 120  # pages of PAGE_SIZE titles: 600 decisions
PAGE_SIZE = 5


def page_plan(title_id: str, seed: int) -> LoadPlan:
    """Pages decided with defer; 70% of the impressions activated, some clicked, some given graded
    rewards (summed, with event ids and client retries)."""
    return LoadPlan(
        title_id,
        impressions=PAGES,
        rate=RATE / PAGE_SIZE,
        page_size=PAGE_SIZE,
        defer=True,
        activate_probability=0.7,
        click_probability=0.2,
        reward_probability=0.3,
        max_click_delay=1.0,
        duplicate_probability=0.15,
        late_probability=0.03,
        late_delay=SETTINGS.attribution_window + 1.0,
        max_duration=60.0,
        seed=seed,
    )


def check_pages(stack: ServiceStack, run: FaultRun) -> None:
    rec = run.reconciliation
    print(f"\n{run.fault} (pages): {rec.numbers}")
    assert not rec.problems, "\n".join(rec.problems) + "\n" + stack.logs()[-4000:]
    assert rec.lost == 0 and rec.doubled == 0
    counts = run.result.counts()
    assert run.result.unsent == 0, counts
    n = rec.numbers
    # every path taken: deferred rows shown and never shown, rewards recorded and deduplicated
    assert n["deferred"] > 250 and n["activations answered activated"] > 100 and n["never shown"] > 30, n
    assert n["rewards recorded"] > 50 and n["rewards duplicate"] > 0 and n["clicks recorded"] > 20, n


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["api-worker", "learner", "redis-stop"])
def test_pages_activations_and_rewards_survive(stack: ServiceStack, fault: str) -> None:
    run = run_fault(stack, fault, page_plan(f"fault-page-{fault}", seed=21))
    check_pages(stack, run)
    if fault == "redis-stop":
        counts = run.result.counts()
        retried = run.reconciliation.numbers["clicks retried"]
        assert retried + counts["activate 503"] + counts["reward 503"] > 0, counts


@pytest.mark.slow
def test_logs_hold_no_secret_and_no_unhandled_error(stack: ServiceStack) -> None:
    logs = stack.logs()
    assert stack.settings.api_key not in logs
    assert "unhandled error" not in logs and "Traceback" not in logs, logs[-4000:]
