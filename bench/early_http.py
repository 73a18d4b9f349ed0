"""Launch day through the served system: API under gunicorn + the real learner, driven over HTTP, vs the
in-process driver on the same world, traffic and windows.

    .venv/bin/python bench/early_http.py [--impressions 3000] [--rate 1.0] [--modes true,false] [--port 9231]

The launch world (one new title, clicks after a log-normal delay with median 60 s, sigma 1.5) with the
production window of 1800 simulated seconds, compressed 30 times: the service runs with a 60 s
attribution window and 1 s snapshots, the driver sends `--rate` impressions per simulated second (1.0:
30 per real second) and each click after its delay / 30 (none due after the window). The in-process run
uses the same world, seed and rate, the 1800 s window and a 30 s (= 1 real s) snapshot interval. Prints
the fraction of the oracle over the first 10 and 30 simulated minutes and over the run, per driver and
mode (`linucb.early_updates`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.early_updates import fraction_until
from bench.http_load import wait_http
from service.devstack.redis_server import PrivateRedis
from service.gunicorn_conf import gunicorn_command
from simulator.config import WorldConfig
from simulator.http_driver import HttpSettings, run_http
from simulator.inprocess import RunSettings, run_inprocess
from simulator.metrics import RunResult
from simulator.scenarios import get_scenario
from simulator.world import World

SCALE = 1.0 / 30.0  # real seconds per simulated second
WINDOW_SIM = 1800.0
RATE_SIM = 1.0
SNAPSHOT_REAL = 1.0


def world(seed: int, rate: float = RATE_SIM) -> World:
    knobs = {**get_scenario("launch").world, "rate": rate}
    return World.generate(WorldConfig(seed=seed).replace(**knobs))


def served(w: World, early: bool, impressions: int, port: int, seed: int) -> RunResult:
    key = secrets.token_urlsafe(16)
    with PrivateRedis() as redis_server:
        env = {
            **os.environ,
            "ARTBANDIT_REDIS_URL": redis_server.url,
            "ARTBANDIT_API_KEY": key,
            "ARTBANDIT_ATTRIBUTION_WINDOW": str(WINDOW_SIM * SCALE),
            "ARTBANDIT_SNAPSHOT_INTERVAL": str(SNAPSHOT_REAL),
            # a shared 2-core machine under load stalls Redis calls past the 50 ms default; a fallback
            # impression is not logged, which would measure the machine rather than the learning
            "ARTBANDIT_REDIS_TIMEOUT": "0.5",
        }
        root = str(Path(__file__).resolve().parent.parent)
        api = subprocess.Popen(gunicorn_command("127.0.0.1", port, 2), env=env, cwd=root)
        learner = subprocess.Popen([sys.executable, "-m", "service.cli", "learn"], env=env, cwd=root)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/healthz")
            settings = HttpSettings(
                base_url=base, impressions=impressions, concurrency=16, api_key=key, seed=seed,
                time_scale=SCALE, buckets=30, max_click_delay=WINDOW_SIM,
            )  # fmt: skip
            return run_http(w, "linucb", {"early_updates": early}, settings)
        finally:
            for proc in (api, learner):
                proc.terminate()
                proc.wait(timeout=15)


def local(w: World, early: bool, impressions: int, seed: int) -> RunResult:
    settings = RunSettings(
        impressions, window=WINDOW_SIM, snapshot_interval=SNAPSHOT_REAL / SCALE, buckets=30, seed=seed
    )
    return run_inprocess(w, "linucb", {"early_updates": early}, settings)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impressions", type=int, default=3000)
    ap.add_argument("--modes", default="true,false")
    ap.add_argument("--port", type=int, default=9231)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=RATE_SIM, help="impressions per simulated second")
    args = ap.parse_args()
    w = world(args.seed, args.rate)
    print("| driver | early_updates | first 10 min | first 30 min | whole run | answered | clicks recorded |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mode in args.modes.split(","):
        early = mode == "true"
        for label, result in (
            ("HTTP (served)", served(w, early, args.impressions, args.port, args.seed)),
            ("in-process", local(w, early, args.impressions, args.seed)),
        ):
            ts = result.timeseries
            e = result.extra
            if "answered" in e:
                print("   ", {k: round(v, 1) for k, v in e.items() if isinstance(v, float)}, flush=True)
            answered = f"{e['answered']:.0f}/{e['requested']:.0f}" if "answered" in e else "-"
            recorded = f"{e.get('click_recorded', 0):.0f}" if "answered" in e else "-"
            print(
                f"| {label} | {mode} | {fraction_until(ts, 600):.3f} | {fraction_until(ts, 1800):.3f} | "
                f"{result.summary['fraction_of_oracle']:.3f} | {answered} | {recorded} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
