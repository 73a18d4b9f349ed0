"""Decide + learn throughput and CTR of every artbandit policy, against MABWiser and raw vowpal-wabbit-next.

    .venv/bin/python bench/policy_speed.py            # K=8, d=16 and K=50, d=64 (about 1-2 minutes)
    .venv/bin/python bench/policy_speed.py --quick    # a tenth of the rounds, for a smoke run

Every system sees the same stream per configuration: a fixed linear-logistic world (artwork k appeals to
genre k, viewers have one dominant genre) with fixed contexts and fixed click draws, so a click depends
only on the round and the chosen artwork. Each round is one decide and one learn of the clicked-or-not
outcome. "single" times one call each per round with a dict context (what the service does); "batch"
decides blocks with `decide_batch` and learns them with `learn_batch` (what the simulator does).

Peers, each timed on its whole loop, with the same per-round overhead of looking up the click:
- MABWiser `LinUCB(alpha=1)` and `EpsilonGreedy(epsilon=0.1)`: `predict` then `partial_fit` per round,
  after one warm-up `fit` on one row per arm (MABWiser requires it). LinUCB gets the same contexts with
  the same constant column our policies add.
- raw vowpal-wabbit-next: `--cb_explore_adf --epsilon 0.05 -q ua`; each round formats and parses a shared
  line and one line per artwork, `predict_one`, samples from VW's pmf, labels the chosen line, `learn_one`.
  (`-q ua` crosses tastes with artworks; without it VW cannot learn who likes what.)
BLAS runs single-threaded (OPENBLAS_NUM_THREADS=1 unless set), as in deployment; that affects the
numpy-based systems (ours, MABWiser) alike. Rates are rounds per CPU second of this process (all threads),
which a busy machine distorts far less than wall time; the wall-clock rate is shown next to it. Our runs
and the raw VW run are repeated (3 times by default) from the same seed, which replays the same decisions,
going round all systems in turn, and the fastest repetition is reported; MABWiser runs once and fewer
rounds. CTR is the expected click rate of the chosen artworks divided by the oracle's, over all rounds each
system ran and over the first R rounds every system ran (the fair column).
Our policies keep a probability floor (default 0.05/K per artwork) so their logs support off-policy
evaluation; that exploration costs CTR, so `linucb (floor 0.0001)` shows the same algorithm without it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from typing import Any, cast

# Single-threaded BLAS, as in deployment (one process per core): on a shared machine OpenBLAS's threads
# contend and make small matrix products several times slower. Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from policies import POLICIES, create_policy

BATCH_BLOCK = 200


@dataclass(frozen=True)
class Stream:
    arms: list[str]
    features: list[str]
    x: np.ndarray  # (n, d) contexts
    click_prob: np.ndarray  # (n, K)
    u: np.ndarray  # (n,) click draws: a click iff u < click_prob of the chosen artwork

    @property
    def oracle(self) -> np.ndarray:
        return self.click_prob.max(axis=1)


def make_stream(k: int, d: int, n: int, seed: int) -> Stream:
    rng = np.random.default_rng(seed)
    genre = np.arange(k) % d
    weights = 0.3 * rng.normal(size=(k, d))
    weights[np.arange(k), genre] += 3.0
    bias = -2.5 + 0.2 * rng.normal(size=k)
    x = 0.2 * rng.random((n, d))
    x[np.arange(n), genre[rng.integers(k, size=n)]] += 0.8
    click_prob = 1.0 / (1.0 + np.exp(-(x @ weights.T + bias)))
    return Stream(
        arms=[f"art{i}" for i in range(k)],
        features=[f"f{i}" for i in range(d)],
        x=x,
        click_prob=click_prob,
        u=rng.random(n),
    )


class Stopwatch:
    """CPU time of this process (all threads) and wall time since construction."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def elapsed(self) -> tuple[float, float]:
        return time.process_time() - self.cpu, time.perf_counter() - self.wall


@dataclass(frozen=True)
class Result:
    system: str
    mode: str
    chosen: np.ndarray  # (rounds,) arm indices
    elapsed: tuple[float, float]  # (CPU seconds, wall seconds)

    @property
    def rounds(self) -> int:
        return len(self.chosen)

    @property
    def rate(self) -> float:
        """Decide + learn rounds per CPU second."""
        return self.rounds / self.elapsed[0]

    @property
    def wall_rate(self) -> float:
        return self.rounds / self.elapsed[1]

    def ctr_ratio(self, stream: Stream, rounds: int | None = None) -> float:
        n = self.rounds if rounds is None else rounds
        got = stream.click_prob[np.arange(n), self.chosen[:n]]
        return float(got.mean() / stream.oracle[:n].mean())


# ----------------------------------------------------------------------------- our policies
def ours_single(name: str, s: Stream, n: int, seed: int, **params: Any) -> Result:
    policy = create_policy(name, arms=s.arms, features=s.features, seed=seed, **params)
    contexts = [dict(zip(s.features, row, strict=True)) for row in s.x[:n].tolist()]
    probs, u = s.click_prob[:n].tolist(), s.u[:n].tolist()
    index = {a: i for i, a in enumerate(s.arms)}
    chosen = []
    watch = Stopwatch()
    for t in range(n):
        context = contexts[t]
        d = policy.decide(context)
        k = index[d.arm]
        policy.learn(context, d.arm, 1.0 if u[t] < probs[t][k] else 0.0, d.propensity)
        chosen.append(k)
    label = name + "".join(f" ({k} {v:g})" for k, v in params.items())
    return Result(label, "single", np.array(chosen), watch.elapsed())


def ours_batch(name: str, s: Stream, n: int, seed: int) -> Result:
    policy = create_policy(name, arms=s.arms, features=s.features, seed=seed)
    chosen = np.empty(n, dtype=np.intp)
    watch = Stopwatch()
    for lo in range(0, n, BATCH_BLOCK):
        hi = min(n, lo + BATCH_BLOCK)
        batch = policy.decide_batch(s.x[lo:hi])
        rows = np.arange(lo, hi)
        clicks = (s.u[lo:hi] < s.click_prob[rows, batch.chosen]).astype(float)
        policy.learn_batch(s.x[lo:hi], batch.chosen, clicks, batch.propensities)
        chosen[lo:hi] = batch.chosen
    return Result(name, f"batch {BATCH_BLOCK}", chosen, watch.elapsed())


# ----------------------------------------------------------------------------- peers
def mabwiser_linucb(s: Stream, n: int, seed: int) -> Result:
    from mabwiser.mab import MAB, LearningPolicy

    x = np.hstack([s.x, np.ones((len(s.x), 1))])
    mab = MAB(s.arms, LearningPolicy.LinUCB(alpha=1.0, l2_lambda=1.0), seed=seed)
    mab.fit(decisions=s.arms, rewards=[0.0] * len(s.arms), contexts=x[-len(s.arms) :])
    probs, u = s.click_prob[:n].tolist(), s.u[:n].tolist()
    index = {a: i for i, a in enumerate(s.arms)}
    chosen = []
    watch = Stopwatch()
    for t in range(n):
        row = x[t : t + 1]
        arm = mab.predict(row)
        k = index[arm]
        mab.partial_fit([arm], [1.0 if u[t] < probs[t][k] else 0.0], row)
        chosen.append(k)
    return Result("MABWiser LinUCB", "single", np.array(chosen), watch.elapsed())


def mabwiser_epsilon_greedy(s: Stream, n: int, seed: int) -> Result:
    from mabwiser.mab import MAB, LearningPolicy

    mab = MAB(s.arms, LearningPolicy.EpsilonGreedy(epsilon=0.1), seed=seed)
    mab.fit(decisions=s.arms, rewards=[0.0] * len(s.arms))
    probs, u = s.click_prob[:n].tolist(), s.u[:n].tolist()
    index = {a: i for i, a in enumerate(s.arms)}
    chosen = []
    watch = Stopwatch()
    for t in range(n):
        arm = mab.predict()
        k = index[arm]
        mab.partial_fit([arm], [1.0 if u[t] < probs[t][k] else 0.0])
        chosen.append(k)
    return Result("MABWiser EpsilonGreedy", "single", np.array(chosen), watch.elapsed())


def raw_vw(s: Stream, n: int, seed: int) -> Result:
    import vowpal_wabbit_next as vw

    workspace = vw.Workspace(["--cb_explore_adf", "--epsilon", "0.05", "-q", "ua", "--quiet"])
    parser = vw.TextFormatParser(workspace)
    action_lines = [f"|a {arm}" for arm in s.arms]
    rows, probs, u = s.x[:n].tolist(), s.click_prob[:n].tolist(), s.u[:n].tolist()
    features = s.features
    rng = np.random.default_rng(seed)
    chosen = []
    watch = Stopwatch()
    for t in range(n):
        shared = "shared |u " + " ".join(f"{f}:{v:.6g}" for f, v in zip(features, rows[t], strict=True))
        examples = [parser.parse_line(shared)] + [parser.parse_line(line) for line in action_lines]
        pmf = cast(list[tuple[int, float]], workspace.predict_one(examples))
        draw, k, p = rng.random(), pmf[-1][0], pmf[-1][1]
        for action, prob in pmf:
            draw -= prob
            if draw < 0:
                k, p = action, prob
                break
        reward = 1.0 if u[t] < probs[t][k] else 0.0
        examples[1 + k].set_label(vw.CBLabel(label=(-reward, p)))
        workspace.learn_one(examples)
        chosen.append(k)
    return Result("raw vowpal-wabbit-next", "single", np.array(chosen), watch.elapsed())


# ----------------------------------------------------------------------------- report
@dataclass(frozen=True)
class Config:
    k: int
    d: int
    rounds: int  # ours
    vw_rounds: int
    mabwiser_linucb_rounds: int
    mabwiser_eps_rounds: int


def run_config(
    cfg: Config, seed: int, repeats: int, log: Callable[[str], None]
) -> tuple[Stream, list[Result]]:
    """Run every system; repetitions go round all systems in turn, so each one's fastest run is drawn
    from the same spread of machine load."""
    s = make_stream(cfg.k, cfg.d, cfg.rounds, seed)
    jobs: list[tuple[int, Callable[[], Result]]] = []
    for name in POLICIES:
        jobs.append((repeats, partial(ours_single, name, s, cfg.rounds, seed)))
        jobs.append((repeats, partial(ours_batch, name, s, cfg.rounds, seed)))
    jobs.append((repeats, partial(ours_single, "linucb", s, cfg.rounds, seed, floor=1e-4)))
    jobs.append((1, partial(mabwiser_linucb, s, cfg.mabwiser_linucb_rounds, seed)))
    jobs.append((1, partial(mabwiser_epsilon_greedy, s, cfg.mabwiser_eps_rounds, seed)))
    jobs.append((repeats, partial(raw_vw, s, cfg.vw_rounds, seed)))
    best: list[Result | None] = [None] * len(jobs)
    for attempt in range(repeats):
        for j, (times, job) in enumerate(jobs):
            if attempt < times:
                r = job()
                log(f"K={cfg.k} d={cfg.d} run {attempt + 1}: {r.system} {r.mode}: {r.rate:,.0f}/CPU s")
                current = best[j]
                if current is None or r.elapsed[0] < current.elapsed[0]:
                    best[j] = r
    return s, [r for r in best if r is not None]


def table(cfg: Config, s: Stream, results: list[Result]) -> list[str]:
    common = min(r.rounds for r in results)
    lines = [
        f"#### K={cfg.k} artworks, d={cfg.d} features (CTR columns: expected CTR / oracle)",
        "",
        "| system | mode | rounds | decide+learn / CPU s | / wall s | CTR, all rounds "
        f"| CTR, first {common} |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.system} | {r.mode} | {r.rounds} | {r.rate:,.0f} | {r.wall_rate:,.0f} "
            f"| {r.ctr_ratio(s):.3f} | {r.ctr_ratio(s, common):.3f} |"
        )
    by = {(r.system, r.mode): r for r in results}
    ours = by[("linucb", "single")]
    unfloored = by[("linucb (floor 0.0001)", "single")]
    lines.append("")
    for peer in ("MABWiser LinUCB", "raw vowpal-wabbit-next"):
        other = by[(peer, "single")]
        lines.append(
            f"- linucb single vs {peer}: {ours.rate / other.rate:.1f}x the rate per CPU second "
            f"({ours.wall_rate / other.wall_rate:.1f}x per wall second); CTR over the first "
            f"{common} rounds {ours.ctr_ratio(s, common):.3f} (floor 0.0001: "
            f"{unfloored.ctr_ratio(s, common):.3f}) vs {other.ctr_ratio(s, common):.3f}"
        )
    return lines


def machine() -> str:
    from http_load import cpu_model  # bench/http_load.py (this script's directory is on the path)

    model = cpu_model()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    versions = ", ".join(
        f"{pkg} {metadata.version(pkg)}" for pkg in ("numpy", "vowpal-wabbit-next", "mabwiser")
    )
    return (
        f"{os.cpu_count()} CPUs, {model}; load average {load}; Python {platform.python_version()}; {versions}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rounds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions (default 3, quick 1)")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    configs = [
        Config(8, 16, 20_000 // scale, 20_000 // scale, 3_000 // scale, 3_000 // scale),
        Config(50, 64, 5_000 // scale, 5_000 // scale, 1_000 // scale, 1_000 // scale),
    ]
    started = time.perf_counter()
    out = [f"Machine: {machine()}", f"Command: {' '.join([os.path.basename(sys.executable), *sys.argv])}", ""]
    for cfg in configs:
        s, results = run_config(cfg, args.seed, repeats, lambda msg: print(msg, file=sys.stderr, flush=True))
        out += [*table(cfg, s, results), ""]
    out.append(f"Total time {time.perf_counter() - started:.0f} s.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
