"""The capacity model's inputs, measured: Redis CPU per impression, per page and per click on one shard;
the client CPU of logging them; the learner's events per second per core; and the same workload on one
Redis and on a local 3-master cluster (docs/deploy.md, "Capacity").

    .venv/bin/python bench/capacity.py                # ~1 minute
    .venv/bin/python bench/capacity.py --n 20000 --threads 4 --page 10

Every Redis runs with AOF `everysec`, as production should. Redis CPU is read from `INFO cpu`
(used_cpu_user + used_cpu_sys, summed over the masters) around each phase; client CPU is this process's
`time.process_time()`, which includes the threads' Python overhead but no HTTP (the API workers' CPU per
request under gunicorn is measured by bench/http_load.py: docs/benchmarks.md). Workload per phase:
`--threads` threads log impressions through `RedisJoin` (the request path's scripts and client),
singly or as pages of `--page` titles (`impress_many`: one batch per shard), click a tenth of them, and a
learner then sweeps, reads and applies every label and publishes.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from http_load import cpu_model  # bench/http_load.py (this script's directory is on the path)

from service.catalog import parse_title
from service.config import Settings
from service.devstack.redis_cluster import PrivateCluster
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.learning.learner import Learner
from service.store import catalog, keys
from service.store.clients import connect, make_redis
from service.store.records import DecisionRecord

T0 = time.time()
WINDOW = 60.0  # clicks land inside it; the learner then sweeps as of a time past every deadline


def redis_cpu(urls: list[str]) -> float:
    total = 0.0
    for url in urls:
        r = redis.Redis.from_url(url)  # this one node, not the cluster it may belong to
        try:
            info: dict[str, Any] = r.info("cpu")  # type: ignore[assignment]
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        finally:
            r.close()
    return total


def record(title_id: str, n: int, now: float) -> DecisionRecord:
    """A synthetic decision of a three-artwork title (bench/early_cost.py uses it too)."""
    return DecisionRecord(
        event_id=keys.new_impression_id(title_id, now),
        title_id=title_id,
        variant="default",
        user_id=f"u{n}",
        context={"romance": (n % 7) / 7, "horror": (n % 5) / 5},
        artworks=["kiss", "scream", "plain"],
        probabilities=[0.5, 0.3, 0.2],
        chosen=("kiss", "scream", "plain")[n % 3],
        propensity=(0.5, 0.3, 0.2)[n % 3],
        model_version=0,
        policy="linucb",
        decided_at=now,
    )


def measure(
    masters: list[str], work: Callable[[], int], label: str, out: dict[str, Any]
) -> None:
    before_r, before_c, start = redis_cpu(masters), time.process_time(), time.perf_counter()
    n = work()
    wall = time.perf_counter() - start
    redis_us = (redis_cpu(masters) - before_r) / n * 1e6
    client_us = (time.process_time() - before_c) / n * 1e6
    out[label] = {"n": n, "redis_us": redis_us, "client_us": client_us, "per_s": n / wall}
    print(f"  {label:<28} n={n:>6}  Redis {redis_us:7.1f} µs  client {client_us:7.1f} µs  "
          f"{n / wall:9.0f}/s wall")  # fmt: skip


def run(url: str, masters: list[str], args: argparse.Namespace) -> dict[str, Any]:
    # a patient socket timeout: this measures CPU, and the machine is shared (a 50 ms stall is no news)
    settings = Settings.load(
        {"redis_url": url, "attribution_window": WINDOW, "redis_timeout": 1.0}, environ={}
    )
    admin = make_redis(settings, for_api=False)
    admin.flushall()
    titles = [f"cap-{i}" for i in range(max(args.page, 12))]
    # deadline-only, as docs/deploy.md's figures were measured: the learner phase runs after all logging,
    # where early updates could not take part anyway; their cost is bench/early_cost.py's
    body = {
        "features": ["romance", "horror"],
        "artworks": [{"id": a} for a in ("kiss", "scream", "plain")],
        "policy": {"name": "linucb", "params": {"early_updates": False}},
    }
    for t in titles:
        catalog.save_title(admin, parse_title(t, body))
    api = make_redis(settings, for_api=True)
    join = RedisJoin(api, settings)
    ids: list[str] = []
    lock = threading.Lock()
    out: dict[str, Any] = {}

    def threaded(per_thread: Callable[[int], None]) -> None:
        threads = [threading.Thread(target=per_thread, args=(k,)) for k in range(args.threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    def single() -> int:
        per = args.n // args.threads

        def go(k: int) -> None:
            mine = []
            for i in range(per):
                rec = record(titles[(k + i) % len(titles)], i, time.time())
                join.impress(rec)
                mine.append(rec.event_id)
            with lock:
                ids.extend(mine)

        threaded(go)
        return per * args.threads

    def pages() -> int:
        per = args.n // args.threads // args.page

        def go(k: int) -> None:
            mine = []
            for i in range(per):
                now = time.time()
                recs = [record(t, i, now) for t in titles[: args.page]]
                errors = join.impress_many([(rec, None) for rec in recs])
                if any(errors):
                    raise RuntimeError(f"page not logged: {errors}")
                mine.extend(rec.event_id for rec in recs)
            with lock:
                ids.extend(mine)

        threaded(go)
        return per * args.threads  # pages

    def clicks() -> int:
        chosen = ids[:: 10]
        per = len(chosen) // args.threads

        def go(k: int) -> None:
            for impression_id in chosen[k * per : (k + 1) * per]:
                join.click(impression_id)

        threaded(go)
        return per * args.threads

    measure(masters, single, "impression (single)", out)
    measure(masters, pages, f"page of {args.page} titles", out)
    measure(masters, clicks, "click", out)
    learner_client = make_redis(settings, for_api=False)
    learner = Learner(learner_client, settings)

    def learn() -> int:
        total = 0
        while n := learner.step(now=time.time() + 2 * WINDOW):
            total += n
        learner.publish()
        return total

    measure(masters, learn, "learner: labelled event", out)
    join.close()
    for c in (api, admin, learner_client):
        c.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=12000, help="impressions per phase (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default: %(default)s)")
    parser.add_argument("--page", type=int, default=10, help="titles per page (default: %(default)s)")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()} x {os.cpu_count()}; threads {args.threads}; AOF everysec")
    results: dict[str, Any] = {}
    print("one Redis:")
    with PrivateRedis(appendonly=True) as single:
        results["single"] = run(single.url, [single.url], args)
    print("Redis Cluster, 3 masters + 3 replicas (all on this machine):")
    with PrivateCluster(masters=3, replicas=1, appendonly=True) as cluster:
        r = connect(cluster.url)
        try:
            masters = [f"redis://{n.host}:{n.port}" for n in r.get_primaries()]  # type: ignore[union-attr]
        finally:
            r.close()
        results["cluster"] = run(cluster.url, masters, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
