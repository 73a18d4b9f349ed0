"""What early updates cost: learner CPU and Redis CPU per 1,000 impressions, early vs deadline-only.

    .venv/bin/python bench/early_cost.py                         # ~2 minutes of one core
    .venv/bin/python bench/early_cost.py --impressions 20000 --rates 20,200,2000 --rounds 2

A private Redis (AOF `everysec`, as production) and the real learner (`Learner`) in this process, on
simulated time. Each round gives one fresh title (LinUCB, 3 artworks, 2 features) `--impressions`
impressions, logged through `RedisJoin` (the request path's scripts: the decision record, the
impression, its deadline) at `rate` per simulated second; a tenth are clicked 1 s later; the attribution
window is 10 s. The learner steps every 0.1 simulated s (`STEP_INTERVAL`, its pace when not behind) and
publishes every simulated second (`snapshot_interval`), then drains. Rounds alternate the two modes
(deadline, early, early, deadline, ...) so a shared machine's drift falls on both.

Measured, as CPU time (less disturbed by other load than throughput is):
- learner: this thread's CPU (`time.thread_time`) inside `step` and `publish`, where nothing else runs;
- Redis while the learner works: redis-server's CPU (the sum over its threads of /proc/<pid>/task/*/
  schedstat, nanoseconds) inside the same calls — what the learner asks of Redis;
- Redis in all: the same counter over the whole round, logging and clicks included (the same work in
  both modes).
With early updates the learner also reads the decisions stream (every impression) and the clicks stream,
and skips the labels of what it took early.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capacity import record  # bench/capacity.py: the same synthetic decision (this directory is on the path)

from service.catalog import parse_title
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.learning.learner import STEP_INTERVAL, Learner
from service.store import catalog, keys
from service.store.clients import make_redis

WINDOW = 10.0  # simulated seconds
CLICK_DELAY = 1.0
CLICK_EVERY = 10  # a tenth of the impressions are clicked (docs/deploy.md's capacity model)
T0 = 1_700_000_000.0
ARTWORKS = ("kiss", "scream", "plain")
MODES = {False: "deadline-only", True: "early updates"}


def redis_cpu_ns(pid: int) -> int:
    """CPU time of every thread of a process so far, in nanoseconds (/proc/<pid>/task/*/schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
            continue
    return total


class Meter:
    """Learner thread CPU and Redis CPU inside the learner's calls."""

    def __init__(self, redis_pid: int) -> None:
        self.pid = redis_pid
        self.learner_s = 0.0
        self.redis_s = 0.0

    def __call__(self, work: Callable[[], Any]) -> Any:
        r0, t0 = redis_cpu_ns(self.pid), time.thread_time()
        out = work()
        self.learner_s += time.thread_time() - t0
        self.redis_s += (redis_cpu_ns(self.pid) - r0) / 1e9
        return out


def one_round(srv: PrivateRedis, early: bool, rate: float, n: int, index: int) -> dict[str, float]:
    assert srv.process is not None
    settings = Settings.load(
        {"redis_url": srv.url, "attribution_window": WINDOW, "snapshot_interval": 1e9, "redis_timeout": 5.0},
        environ={},
    )
    admin = make_redis(settings, for_api=False)
    admin.flushall()
    title_id = f"cost-{index}"
    body = {
        "features": ["romance", "horror"],
        "artworks": [{"id": a} for a in ARTWORKS],
        "policy": {"name": "linucb", "params": {"early_updates": early}},
    }
    catalog.save_title(admin, parse_title(title_id, body))
    join = RedisJoin(make_redis(settings, for_api=True), settings)
    learner = Learner(make_redis(settings, for_api=False), settings)
    meter = Meter(srv.process.pid)
    meter(lambda: learner.step(now=T0))  # loads the title; an early policy takes decisions from T0
    redis_start = redis_cpu_ns(srv.process.pid)
    per_step = rate * STEP_INTERVAL
    clicks: list[tuple[float, str]] = []
    logged, step = 0, 0
    next_publish = T0 + 1.0
    while logged < n:
        step += 1
        now = T0 + step * STEP_INTERVAL
        upto = min(n, round(step * per_step))
        for i in range(logged, upto):
            at = now - STEP_INTERVAL + (i - logged + 0.5) / max(upto - logged, 1) * STEP_INTERVAL
            rec = record(title_id, i, at)
            join.impress(rec)
            if i % CLICK_EVERY == 0:
                clicks.append((at + CLICK_DELAY, rec.event_id))
        logged = upto
        while clicks and clicks[0][0] <= now:
            at, impression_id = clicks.pop(0)
            join.click(impression_id, now=at)
        meter(lambda now=now: learner.step(now=now))
        if now >= next_publish:
            meter(learner.publish)
            next_publish += 1.0
    for at, impression_id in clicks:
        join.click(impression_id, now=at)
    end = T0 + step * STEP_INTERVAL + 2 * WINDOW
    while meter(lambda: learner.step(now=end)):
        pass
    meter(learner.publish)
    redis_all = (redis_cpu_ns(srv.process.pid) - redis_start) / 1e9
    stored = admin.hgetall(keys.snapshot(title_id))
    applied = int(stored[b"applied"])  # type: ignore[index]
    if applied != n or learner.early.labels_taken != (n if early else 0):
        raise RuntimeError(f"round {index}: applied {applied}, taken early {learner.early.labels_taken}")
    per_k = 1000.0 / n
    return {
        "learner_ms": meter.learner_s * per_k * 1e3,
        "redis_learner_ms": meter.redis_s * per_k * 1e3,
        "redis_all_ms": redis_all * per_k * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impressions", type=int, default=20_000, help="per round")
    ap.add_argument("--rates", default="200,2000", help="impressions per simulated second, comma-separated")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per mode and rate")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[tuple[float, bool], list[dict[str, float]]] = {}
    with PrivateRedis(appendonly=True) as srv:
        index = 0
        for rate in rates:
            for k in range(args.rounds):
                order = (False, True) if k % 2 == 0 else (True, False)
                for early in order:
                    index += 1
                    res = one_round(srv, early, rate, args.impressions, index)
                    results.setdefault((rate, early), []).append(res)
                    print(f"  rate {rate:g}/s {MODES[early]:<14} " + "  ".join(
                        f"{k} {v:.1f}" for k, v in res.items()), flush=True)  # fmt: skip
    print(
        f"\nCPU ms per 1,000 impressions (median of {args.rounds} rounds of {args.impressions:,}; "
        f"1 in {CLICK_EVERY} clicked; window {WINDOW:g} s, learner step {STEP_INTERVAL} s)\n"
    )
    print("| impressions/s | learning | learner | Redis, learner's calls | Redis, all (logging included) |")
    print("|---:|---|---:|---:|---:|")
    cols = ("learner_ms", "redis_learner_ms", "redis_all_ms")
    for rate in rates:
        med = {e: {c: statistics.median(r[c] for r in results[(rate, e)]) for c in cols} for e in MODES}
        for early in MODES:
            figures = " | ".join(f"{med[early][c]:.0f}" for c in cols)
            print(f"| {rate:,.0f} | {MODES[early]} | {figures} |")
        print(f"| {rate:,.0f} | ratio early / deadline | "
              + " | ".join(f"{med[True][c] / med[False][c]:.2f}x" for c in cols) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
