"""Failover on a Redis Cluster, long form: a master killed under HTTP load, then a learner killed.

    .venv/bin/python bench/cluster_failover.py                       # default lease TTL (6 s), ~2 min
    .venv/bin/python bench/cluster_failover.py --lease-ttl 3 --rate 60 --impressions 900

A private 3 + 3 cluster (AOF everysec, cluster-node-timeout 2 s), `artbandit serve` (2 workers) and two
`artbandit learn` sharing the titles by lease (tests/faults/cluster_stack.py). Part 1: one title per
master under open-loop load; the victim's master gets SIGKILL after a third of its impressions; every
title is reconciled. Part 2: six titles; one learner gets SIGKILL; seconds until its titles have new
lease owners and fresh snapshots; every title reconciled. The short form runs in `make test`
(tests/faults/test_cluster_failover.py); numbers in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from http_load import cpu_model  # bench/http_load.py (this script's directory is on the path)

from tests.faults.cluster_failover import (
    run_learner_takeover,
    run_master_failover,
    titles_one_per_master,
)
from tests.faults.cluster_stack import ClusterServiceStack
from tests.faults.load import LoadPlan
from tests.faults.stack import StackSettings


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lease-ttl", type=float, default=6.0, help="seconds (default: %(default)s)")
    parser.add_argument("--impressions", type=int, default=600, help="per title (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=40.0, help="per title, per s (default: %(default)s)")
    parser.add_argument("--redis-timeout", type=float, default=0.25, help="API socket timeout, s")
    args = parser.parse_args()
    settings = StackSettings(
        workers=2, appendfsync="everysec", attribution_window=2.0, snapshot_interval=0.5,
        extra_env=(("ARTBANDIT_REDIS_TIMEOUT", f"{args.redis_timeout:g}"),),
    )  # fmt: skip

    def plan(title_id: str, seed: int, impressions: int, rate: float) -> LoadPlan:
        return LoadPlan(
            title_id, impressions=impressions, rate=rate, click_probability=0.35, max_click_delay=1.0,
            duplicate_probability=0.15, threads=3, max_duration=120.0, seed=seed,
        )  # fmt: skip

    print(f"CPU: {cpu_model()} x {os.cpu_count()}; lease TTL {args.lease_ttl:g} s; "
          f"API socket timeout {args.redis_timeout:g} s")  # fmt: skip
    failed = False
    with tempfile.TemporaryDirectory(prefix="artbandit-cluster-") as tmp:
        with ClusterServiceStack(Path(tmp), settings, lease_ttl=args.lease_ttl) as stack:
            titles = titles_one_per_master(stack, "fo")
            plans = [plan(t, 20 + i, args.impressions, args.rate) for i, t in enumerate(titles)]
            run = run_master_failover(stack, plans)
            print(f"\nmaster of {run.victim} killed (port {run.killed_port}); replica promoted after "
                  f"{run.promoted_after:.2f} s; workers {run.workers_before} -> {run.workers_after}; "
                  f"learners alive {run.learners_alive}")  # fmt: skip
            for t, outcome in run.titles.items():
                tag = "victim" if t == run.victim else "other shard"
                print(f"  {t} ({tag}): {outcome.summary()}")
                failed = failed or outcome.reconciliation.doubled > 0

            titles = [f"lt-{i}" for i in range(6)]
            plans = [plan(t, 40 + i, args.impressions // 2, args.rate / 2) for i, t in enumerate(titles)]
            take = run_learner_takeover(stack, plans)
            print(f"\nlearner pid {take.killed_pid} killed holding {take.titles_of_killed}: new owners after "
                  f"{take.taken_over_after:.2f} s, snapshots published again after "
                  f"{take.snapshots_after:.2f} s")  # fmt: skip
            for t, outcome in take.titles.items():
                rec = outcome.reconciliation
                print(f"  {t}: lost {rec.lost}, doubled {rec.doubled}, problems {rec.problems or 'none'}")
                failed = failed or bool(rec.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
