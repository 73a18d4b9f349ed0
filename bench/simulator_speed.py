"""Simulated impressions per second of the in-process driver, per policy; optionally, served vs in-process.

    .venv/bin/python bench/simulator_speed.py                      # throughput, both worlds, every policy
    .venv/bin/python bench/simulator_speed.py --policies linucb --worlds bench
    .venv/bin/python bench/simulator_speed.py --compare-http 9000  # served (gunicorn + learner) vs in-process

Worlds: "bench" is one title with K=8 artworks and d=16 taste features at 2,000 impressions/s (the
throughput goal: >= 100k simulated impressions/s for LinUCB on one core); "default" is `artbandit
simulate`'s default world (10 titles at 200 impressions/s), where the per-title snapshot publications
(serialize + load every simulated second) weigh more. The full run semantics are kept in both: served
snapshots, the join's windows and delays, labels applied in time order. `--early-updates false` gives
docs/results.md's figures (measured before early updates became the default).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from policies import POLICIES as POLICY_CLASSES
from simulator.config import WorldConfig
from simulator.inprocess import RunSettings, run_inprocess
from simulator.world import World

WORLDS = {
    "bench": WorldConfig(titles=1, artworks=8, tastes=16, rate=2000.0),
    "default": WorldConfig(),
}
POLICIES = ("uniform", "epsilon_greedy", "linucb", "linear_ts", "vw")


def early_params(policy: str, early_updates: str) -> dict[str, Any]:
    """{"early_updates": ...} for the policies that have the setting, unless "auto" (their default)."""
    settings = {f.name for f in fields(POLICY_CLASSES[policy].settings_class)}
    if early_updates == "auto" or "early_updates" not in settings:
        return {}
    return {"early_updates": early_updates == "true"}


def throughput(worlds: list[str], policies: list[str], impressions: int, early_updates: str) -> None:
    print(f"{'world':<8} {'policy':<15} {'impressions':>11} {'wall s':>7} {'sim. imp/s':>11} {'oracle':>7}")
    for name in worlds:
        world = World.generate(WORLDS[name])
        for policy in policies:
            n = impressions if policy != "vw" or name == "bench" else max(impressions // 10, 1000)
            params = early_params(policy, early_updates)
            result = run_inprocess(world, policy, params, RunSettings(impressions=n, window=60.0, seed=1))
            e = result.extra
            print(
                f"{name:<8} {policy:<15} {n:>11,} {e['wall_seconds']:>7.2f} "
                f"{e['impressions_per_second']:>11,.0f} {result.summary['fraction_of_oracle']:>7.3f}",
                flush=True,
            )


COMPARE_WORLD = WorldConfig(titles=2, artworks=4, tastes=6, viewers=2000, rate=150.0, seed=7)
COMPARE_WINDOW = 20.0


def compare_http(impressions: int, policy: str, workers: int, early_updates: str) -> None:
    """Start a private Redis, the API under gunicorn and the learner; drive them over HTTP; then run the
    in-process driver on the same world, traffic, window and snapshot interval, and compare."""
    from http_load import wait_http  # bench/http_load.py (this script's directory is on the path)

    from service.devstack.redis_server import PrivateRedis, free_port
    from service.gunicorn_conf import gunicorn_command
    from simulator.http_driver import HttpSettings, run_http

    world = World.generate(COMPARE_WORLD)
    key = secrets.token_urlsafe(16)
    port = free_port()
    with PrivateRedis() as redis_server:
        env = {
            **os.environ,
            "ARTBANDIT_REDIS_URL": redis_server.url,
            "ARTBANDIT_API_KEY": key,
            "ARTBANDIT_ATTRIBUTION_WINDOW": str(COMPARE_WINDOW),
            "ARTBANDIT_SNAPSHOT_INTERVAL": "1.0",
        }
        root = str(Path(__file__).resolve().parent.parent)
        api = subprocess.Popen(gunicorn_command("127.0.0.1", port, workers), env=env, cwd=root)
        learner = subprocess.Popen([sys.executable, "-m", "service.cli", "learn"], env=env, cwd=root)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/healthz")
            settings = HttpSettings(
                base_url=base, impressions=impressions, concurrency=16, api_key=key, seed=1
            )
            served = run_http(world, policy, early_params(policy, early_updates), settings)
        finally:
            for proc in (api, learner):
                proc.terminate()
                proc.wait(timeout=15)
    params = early_params(policy, early_updates)
    local = run_inprocess(world, policy, params, RunSettings(impressions, window=COMPARE_WINDOW, seed=1))
    e = served.extra
    print(
        f"served: {e['answered']:.0f}/{e['requested']:.0f} answered at {e['achieved_rate']:.0f}/s, "
        f"p50 {e['latency_p50_ms']:.1f} ms, p99 {e['latency_p99_ms']:.1f} ms, clicks recorded "
        f"{e.get('click_recorded', 0):.0f} of {e.get('clicks_sent', 0):.0f} sent"
    )
    print(f"{'driver':<11} {'expected CTR':>12} {'oracle CTR':>10} {'frac. oracle':>12} {'last half':>9}")
    for label, r in (("http", served), ("in-process", local)):
        s = r.summary
        print(
            f"{label:<11} {s['expected_ctr']:>12.4f} {s['oracle_ctr']:>10.4f} "
            f"{s['fraction_of_oracle']:>12.3f} {s['fraction_of_oracle_last_half']:>9.3f}"
        )
    ratio = served.summary["fraction_of_oracle"] / local.summary["fraction_of_oracle"]
    print(f"served / in-process (fraction of oracle): {ratio:.3f}  (goal >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worlds", default="bench,default")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--impressions", type=int, default=200_000)
    parser.add_argument("--compare-http", type=int, metavar="IMPRESSIONS", help="run the served comparison")
    parser.add_argument("--http-policy", default="linucb")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--early-updates", choices=("auto", "true", "false"), default="auto",
        help="early_updates of the policies that have it: auto (their default: early), true, or false "
        "(docs/results.md's figures)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.compare_http:
        compare_http(args.compare_http, args.http_policy, args.workers, args.early_updates)
        return
    throughput(args.worlds.split(","), args.policies.split(","), args.impressions, args.early_updates)


if __name__ == "__main__":
    main()
