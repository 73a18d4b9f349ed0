"""The fault suite, long form: the service under HTTP load while things break, then every answer reconciled.

    .venv/bin/python bench/faults.py                      # every fault, 2 rounds, then the AOF loss window
    .venv/bin/python bench/faults.py --faults redis-kill9 --rounds 3 --injections 2
    .venv/bin/python bench/faults.py --skip-http --loss-trials 20 --pressure-mb 256

Part 1 — faults under load. One stack (`artbandit serve` with 2 gunicorn workers, `artbandit learn`, a
private Redis with AOF): per fault and round a fresh title gets `--impressions` at `--rate` (impressions
plus delayed, duplicate and late clicks); the fault is injected `--injections` times, evenly spread; then
every deadline passes, the learner catches up, and tests/faults/reconcile.py compares what clients were
told with what Redis holds. Faults: api-worker (kill -9 a gunicorn worker), learner (kill -9, restart),
redis-stop (clean stop, restart on the AOF), redis-kill9 (kill -9 Redis, restart on the AOF: with
`everysec` acknowledged writes *may* be lost — reported, not a failure).

Part 2 — the AOF loss window: writers drive the join's Lua scripts flat out, redis-server gets SIGKILL,
restarts on its AOF, and the acknowledged impressions and clicks that are missing are counted, for
`appendfsync always` and `everysec` (tests/faults/aof_loss.py). `--pressure-mb` keeps the disk busy with
fsync'd writes meanwhile (a slow fsync is when `everysec` postpones AOF writes).

Exit status 1 if a promise broke: any reconciliation problem outside redis-kill9, any loss with `always`.
The harness lives in tests/faults/ (shared with the short form `make test` runs); docs/reliability.md
holds the numbers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# the fault and soak machinery lives in tests/faults/: import it from the repository root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.aof_loss import LossTrial, measure_loss
from tests.faults.load import LoadPlan
from tests.faults.scenario import FAULTS, FaultRun, run_fault
from tests.faults.stack import ServiceStack, StackSettings

COLUMNS = (
    "requests", "impressions logged", "impressions fallback", "impressions unanswered", "clicks recorded",
    "clicks duplicate", "clicks late", "clicks retried", "clicks given up", "orphan decisions",
    "labelled clicked", "labelled defaulted", "learner applied", "lost impressions", "lost clicks",
    "doubled decisions", "doubled labels", "recorded twice", "server errors",
)  # fmt: skip
MAY_LOSE = {"redis-kill9"}  # with everysec, by design (docs/reliability.md)


def fault_rounds(args: argparse.Namespace, workdir: Path) -> list[FaultRun]:
    settings = StackSettings(workers=2, appendfsync=args.appendfsync, attribution_window=args.window)
    runs: list[FaultRun] = []
    at = tuple((i + 1) / (args.injections + 1) for i in range(args.injections))
    with ServiceStack(workdir, settings) as stack:
        for fault in args.faults:
            for round_ in range(args.rounds):
                plan = LoadPlan(
                    f"bench-{fault}-{round_}", impressions=args.impressions, rate=args.rate,
                    click_probability=0.35, max_click_delay=args.window / 2, duplicate_probability=0.15,
                    late_probability=0.05, late_delay=args.window + 1.0, max_duration=3600,
                    seed=1000 * round_ + len(runs),
                )  # fmt: skip
                run = run_fault(stack, fault, plan, at=at, settle_timeout=120)
                runs.append(run)
                rec = run.reconciliation
                verdict = "ok" if not rec.problems else ("LOSS (allowed)" if fault in MAY_LOSE else "BROKEN")
                numbers = ", ".join(f"{k} {v}" for k, v in rec.numbers.items())
                print(f"{fault:<12} round {round_}: {verdict}; {numbers}", flush=True)
                for problem in rec.problems:
                    print(f"    {problem}", flush=True)
        leaked = settings.api_key in stack.logs()
    if leaked:
        print("the admin key appears in the service's logs", flush=True)
    return runs


def fault_table(runs: list[FaultRun]) -> str:
    lines = [
        "| fault | rounds × injections | " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for fault in dict.fromkeys(r.fault for r in runs):
        mine = [r for r in runs if r.fault == fault]
        totals = {c: sum(r.reconciliation.numbers.get(c, 0) for r in mine) for c in COLUMNS}
        lines.append(
            f"| {fault} | {len(mine)} × {len(mine[0].fault_at)} | "
            + " | ".join(f"{totals[c]:,}" for c in COLUMNS)
            + " |"
        )
    return "\n".join(lines)


@contextmanager
def disk_pressure(directory: Path, megabytes: int) -> Iterator[None]:
    """Write and fsync `megabytes` over and over in `directory` while the block runs (0: nothing)."""
    if megabytes <= 0:
        yield
        return
    stop = threading.Event()
    path = directory / "pressure.bin"

    def churn() -> None:
        block = os.urandom(1 << 20)
        while not stop.is_set():
            with open(path, "wb") as fh:
                for _ in range(megabytes):
                    fh.write(block)
                fh.flush()
                os.fsync(fh.fileno())
            path.unlink()

    thread = threading.Thread(target=churn, name="disk-pressure", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(120)


def loss_window(args: argparse.Namespace, workdir: Path) -> dict[str, list[LossTrial]]:
    trials: dict[str, list[LossTrial]] = {}
    with disk_pressure(workdir, args.pressure_mb):
        for mode in ("always", "everysec"):
            trials[mode] = []
            for i in range(args.loss_trials):
                trial = measure_loss(workdir / f"aof-{mode}-{i}", mode, run_for=args.loss_seconds, seed=i)
                trials[mode].append(trial)
                print(
                    f"{mode:<9} trial {i}: acknowledged {trial.acked_impressions} impressions, "
                    f"{trial.acked_clicks} clicks; lost {trial.lost_impressions} + {trial.lost_clicks} "
                    f"(oldest {trial.oldest_lost_age:.3f} s before the kill); "
                    f"delayed fsyncs {trial.delayed_fsyncs}",
                    flush=True,
                )
    return trials


def loss_table(trials: dict[str, list[LossTrial]]) -> str:
    lines = [
        "| appendfsync | trials | acknowledged impressions | acknowledged clicks | lost impressions "
        "| lost clicks | oldest loss before the kill |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, ts in trials.items():
        lines.append(
            f"| {mode} | {len(ts)} | {sum(t.acked_impressions for t in ts):,} "
            f"| {sum(t.acked_clicks for t in ts):,} "
            f"| {sum(t.lost_impressions for t in ts)} | {sum(t.lost_clicks for t in ts)} "
            f"| {max((t.oldest_lost_age for t in ts), default=0.0):.3f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faults",
        type=lambda s: s.split(","),
        default=list(FAULTS),
        help=f"comma-separated, from {', '.join(FAULTS)} (default: all)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="titles (load runs) per fault (default: %(default)s)"
    )
    parser.add_argument("--injections", type=int, default=2, help="faults per run (default: %(default)s)")
    parser.add_argument("--impressions", type=int, default=2000, help="per run (default: %(default)s)")
    parser.add_argument(
        "--rate", type=float, default=120.0, help="impressions per second (default: %(default)s)"
    )
    parser.add_argument(
        "--window", type=float, default=2.0, help="attribution window, s (default: %(default)s)"
    )
    parser.add_argument("--appendfsync", default="everysec", choices=("everysec", "always"))
    parser.add_argument("--loss-trials", type=int, default=10, help="kill -9 trials per fsync policy")
    parser.add_argument("--loss-seconds", type=float, default=1.0, help="writing before each kill, s")
    parser.add_argument(
        "--pressure-mb", type=int, default=0, help="fsync'd disk churn during the loss trials"
    )
    parser.add_argument("--skip-http", action="store_true", help="only the AOF loss window")
    args = parser.parse_args(argv)
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    logging.basicConfig(level=logging.ERROR)
    broken = False
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="artbandit-faults-") as tmp:
        workdir = Path(tmp)
        if not args.skip_http:
            runs = fault_rounds(args, workdir / "stack")
            print("\n" + fault_table(runs) + "\n", flush=True)
            broken |= any(r.reconciliation.problems for r in runs if r.fault not in MAY_LOSE)
        if args.loss_trials > 0:
            trials = loss_window(args, workdir)
            print("\n" + loss_table(trials) + "\n", flush=True)
            broken |= any(t.lost for t in trials["always"])
    print(f"{'BROKEN PROMISES' if broken else 'every promise held'} ({time.perf_counter() - started:.0f} s)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
