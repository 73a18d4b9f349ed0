"""Soak: does memory stay flat while impressions keep coming? Prints memory over time and a verdict.

    .venv/bin/python bench/soak.py                          # 1M in process (both paths) + 100k over HTTP
    .venv/bin/python bench/soak.py --http 0 --inprocess 200000 --simulator 0
    .venv/bin/python bench/soak.py --inprocess 0 --simulator 0 --http 20000 --rate 300

In process (tests/faults/soak.py): `--inprocess` impressions one by one through the service's per-event
path (policy decides, MemoryJoin, PolicyBook learns, the policy is republished every simulated second),
and `--simulator` impressions through the simulator's vectorized driver; RSS and live Python objects
(`sys.getallocatedblocks`) sampled as they go. Verdict: flat when every sample after the first 20% is
within ±10% of the sample at 20%.

Over HTTP: a stack (`artbandit serve`, 2 gunicorn workers, `artbandit learn`, private Redis with AOF)
with small retention (ARTBANDIT_RETENTION_EVENTS=1000, ARTBANDIT_RETENTION_SECONDS=`--window`) gets
`--http` impressions at `--rate` plus clicks; sampled every `--every` seconds: the workers' and the
learner's RSS, Redis `used_memory`, key count, stream lengths and the pending set. Redis must level off
at what the retention allows, not grow with the traffic. Numbers go to docs/reliability.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# the fault and soak machinery lives in tests/faults/: import it from the repository root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.load import LoadPlan
from tests.faults.scenario import TITLE
from tests.faults.soak import (
    InProcessSoak,
    Sample,
    flat,
    soak_http,
    soak_inprocess,
    soak_simulator,
)
from tests.faults.stack import ServiceStack, StackSettings

MB = 2**20


def print_inprocess(name: str, samples: list[Sample]) -> bool:
    print(f"\n{name}: impressions, wall s, RSS MB, Python blocks" + (", pending" if samples[0].extra else ""))
    step = max(1, len(samples) // 20)
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        pending = f" {s.get('pending'):>8,.0f}" if s.extra else ""
        print(f"  {s.impressions:>10,} {s.seconds:>7.1f} {s.rss / MB:>8.1f} {s.blocks:>10,}{pending}")
    rss, blocks = flat([float(s.rss) for s in samples]), flat([float(s.blocks) for s in samples])
    rate = samples[-1].impressions / max(samples[-1].seconds, 1e-9)
    print(f"  RSS {rss}; Python blocks {blocks}; {rate:,.0f} impressions/s")
    return rss.ok and blocks.ok


def run_http(args: argparse.Namespace) -> bool:
    settings = StackSettings(
        attribution_window=args.window,
        extra_env=(
            ("ARTBANDIT_RETENTION_EVENTS", "1000"),
            ("ARTBANDIT_RETENTION_SECONDS", f"{args.window:g}"),
        ),
    )
    with (
        tempfile.TemporaryDirectory(prefix="artbandit-soak-") as tmp,
        ServiceStack(Path(tmp), settings) as stack,
    ):
        stack.put_title("soak", TITLE)
        plan = LoadPlan(
            "soak",
            impressions=args.http,
            rate=args.rate,
            click_probability=0.3,
            max_click_delay=args.window / 2,
            duplicate_probability=0.1,
            max_duration=24 * 3600,
        )
        samples, result = soak_http(stack, plan, every=args.every)
    print(f"\nHTTP: {result.requests:,} requests in {result.duration:.0f} s: {dict(result.counts())}")
    header = "impressions  wall s  workers RSS MB  learner RSS MB  Redis used MB  keys  decisions  labelled"
    header += "  pending"
    print("  " + header)
    step = max(1, len(samples) // 25)
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(
            f"  {s.impressions:>11,} {s.seconds:>7.0f} {s.rss / MB:>15.1f} "
            f"{s.get('learner_rss') / MB:>15.1f} {s.get('redis_used_memory') / MB:>14.2f} "
            f"{s.get('redis_keys'):>5,.0f} "
            f"{s.get('decisions'):>10,.0f} {s.get('labelled'):>9,.0f} {s.get('pending'):>8,.0f}"
        )
    warm = [s for s in samples if s.seconds >= 2 * (2 * args.window) and s.impressions < args.http]
    if len(warm) < 5:
        print("  too short to judge (fewer than 5 samples after warm-up)")
        return True
    workers = flat([float(s.rss) for s in warm])
    learner = flat([s.get("learner_rss") for s in warm])
    redis_memory = flat([s.get("redis_used_memory") for s in warm], tolerance=0.25)
    print(f"  workers' RSS {workers}; learner RSS {learner}; Redis used_memory (±25%) {redis_memory}")
    keys_max = max(s.get("redis_keys") for s in warm)
    streams_max = max(max(s.get("decisions"), s.get("labelled")) for s in warm)
    print(f"  Redis keys max {keys_max:,.0f}; streams max {streams_max:,.0f} (retention 1000 + a node)")
    return workers.ok and learner.ok and redis_memory.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inprocess", type=int, default=1_000_000, help="per-event path (0: skip)")
    parser.add_argument("--simulator", type=int, default=1_000_000, help="simulator driver (0: skip)")
    parser.add_argument("--http", type=int, default=100_000, help="impressions over HTTP (0: skip)")
    parser.add_argument("--rate", type=float, default=300.0, help="HTTP impressions per second")
    parser.add_argument("--window", type=float, default=2.0, help="attribution window and retention, s")
    parser.add_argument("--every", type=float, default=5.0, help="HTTP sampling period, s")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ok = True
    if args.inprocess:
        ok &= print_inprocess(
            "per-event path", soak_inprocess(InProcessSoak(impressions=args.inprocess, samples=100))
        )
    if args.simulator:
        ok &= print_inprocess("simulator driver", soak_simulator(args.simulator, samples=100))
    if args.http:
        ok &= run_http(args)
    print(f"\n{'memory is flat' if ok else 'MEMORY GROWS'} ({time.perf_counter() - started:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
