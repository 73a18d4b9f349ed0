"""Why labels wait for the deadline: LinUCB learning with click labels at click time vs at the deadline.

    python bench/label_timing.py [SEEDS [WINDOWS]]     # e.g. 5 10000

A synthetic world (K=8 artworks, d=16 taste features, Dirichlet tastes, logistic clicks with a low
base rate); one impression per time step; snapshots every 100 steps; click delays exponential with a
mean of window/10. Prints the second half's fraction of the oracle CTR for several windows (impressions
in flight). With labels at click time the learner sees clicks before the non-clicks of the same period
and over-credits what it showed recently. Early updates (the decision enters the statistics at once with
reward 0, the click when it arrives) are shown beside them.
"""

from __future__ import annotations

import heapq
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies import create_policy, load_policy
from simulator.report import mean_ci


def run(mode: str, window: int, n: int = 40_000, seed: int = 0, k: int = 8, d: int = 16) -> float:
    """mode: "click" (a click labelled at click time, a non-click at the deadline), "deadline" (every
    label at the deadline) or "early" (early updates: the decision enters at once, the click when it
    arrives, nothing at the deadline)."""
    rng = np.random.default_rng(seed)
    appeal = rng.normal(0, 1.5, (k, d))
    early = mode == "early"
    policy = create_policy(
        "linucb", [f"a{i}" for i in range(k)], [f"f{i}" for i in range(d)], seed, alpha=1.0,
        early_updates=early,
    )  # fmt: skip
    serving = load_policy(policy.to_bytes())
    x = rng.dirichlet(np.full(d, 0.3), n)
    p_click = 1 / (1 + np.exp(-(-3.0 + 3 * x @ appeal.T)))
    clicks = rng.random((n, k)) < p_click
    delay = rng.exponential(window / 10, n)
    queue: list[tuple[float, int, int, float, float]] = []
    got = best = 0.0
    for t in range(n):
        while queue and queue[0][0] <= t:
            _, i, arm, reward, prop = heapq.heappop(queue)
            if early:
                policy.learn_reward_batch(x[i : i + 1], np.array([arm]), np.array([reward]))
            else:
                policy.learn_batch(x[i : i + 1], np.array([arm]), np.array([reward]), np.array([prop]))
        if t % 100 == 0:
            serving = load_policy(policy.to_bytes())
        decision = serving.decide_batch(x[t : t + 1])
        arm, prop = int(decision.chosen[0]), float(decision.propensities[0])
        clicked = bool(clicks[t, arm]) and delay[t] <= window
        if t >= n // 2:
            got += p_click[t, arm]
            best += p_click[t].max()
        if early:
            policy.learn_decided_batch(x[t : t + 1], np.array([arm]))
            if clicked:
                heapq.heappush(queue, (t + delay[t], t, arm, 1.0, prop))
            continue
        label_at = t + delay[t] if (clicked and mode == "click") else t + window
        heapq.heappush(queue, (label_at, t, arm, float(clicked), prop))
    return got / best


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    windows = [int(w) for w in sys.argv[2].split(",")] if len(sys.argv) > 2 else [100, 2_000, 10_000]
    modes = ("click", "deadline", "early")
    print(f"{seeds} seeds; mean and 95% interval (t) over seeds")
    print(
        "| impressions in flight (window) | labels at click time | labels at the deadline | early updates |"
    )
    print("|---:|---:|---:|---:|")
    for window in windows:
        cells = []
        for mode in modes:
            mean, low, high = mean_ci([run(mode, window, seed=s) for s in range(seeds)])
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        print(f"| {window:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
