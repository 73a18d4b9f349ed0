"""`artbandit simulate | replay | tune | export`: the offline tools.

    artbandit simulate --policies linucb,linear_ts,vw,epsilon_greedy,uniform --impressions 200000 \\
        --seed 1 --out reports/run1
    artbandit simulate --target http://127.0.0.1:8000 --policies linucb --impressions 5000  # over HTTP
    artbandit simulate --scenario launch --seeds 5 --param linucb.early_updates=true --out reports/launch
    artbandit replay logs.parquet --policy linucb --param alpha=1.0
    artbandit tune logs.parquet --policy linucb --grid alpha=0.1,0.3,1,3 --grid floor=0.01,0.05 --json
    artbandit export --redis-url redis://127.0.0.1:6380/0 --out logs.parquet

`service/cli.py` registers these through `add_subcommands`; `python -m simulator.cli` runs them alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from simulator.config import WorldConfig

DEFAULT_POLICIES = "linucb,linear_ts,vw,epsilon_greedy,uniform"


def parse_value(text: str) -> Any:
    """A parameter value: JSON literal (number, true/false, null, string in quotes) else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: Sequence[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must look like name=value, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def policy_params(items: Sequence[str], policies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--param linucb.alpha=1.0` -> {"linucb": {"alpha": 1.0}}; a bare name goes to every policy."""
    params: dict[str, dict[str, Any]] = {p: {} for p in policies}
    for key, value in parse_assignments(items, "--param").items():
        policy, dot, name = key.rpartition(".")
        if not dot:
            for p in policies:
                params[p][name] = value
        elif policy not in params:
            raise ValueError(f"--param {key}: policy {policy!r} is not in --policies ({', '.join(policies)})")
        else:
            params[policy][name] = value
    return params


def describe_world(config: WorldConfig, window: float, interval: float) -> str:
    c = config
    parts = [
        f"World: {c.titles} titles x {c.artworks} artworks, {c.tastes} taste features, {c.viewers:,} viewers "
        f"({c.returning:.0%} of impressions from returning viewers), {c.rate:g} impressions/s, base rates "
        f"{c.base_rate_low:.0%}-{c.base_rate_high:.0%}, appeal strength {c.appeal_strength:g}, "
        f"context noise {c.context_noise:g}, non-linearity {c.nonlinearity:g}; click delay lognormal "
        f"(median {c.click_delay_median:g} s, sigma {c.click_delay_sigma:g}); "
        f"attribution window {window:g} s; snapshot every {interval:g} s."
    ]
    if c.drift_at is not None:
        parts.append(f"Drift at {c.drift_at:g} s (strength {c.drift_strength:g}).")
    if c.new_artworks:
        parts.append(f"{c.new_artworks} new artwork(s) per title at {c.new_artworks_at:g} s.")
    return " ".join(parts)


# ----------------------------------------------------------------------------- simulate
def cmd_simulate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from simulator.inprocess import RunSettings, run_inprocess
    from simulator.report import Report
    from simulator.world import World

    _apply_scenario(args)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    params = policy_params(args.param, policies)
    base_world = World.load(args.world) if args.world else None
    overrides = {**args.scenario_world, **parse_assignments(args.set, "--set")}
    if args.drift_at is not None:
        overrides["drift_at"] = args.drift_at
    seeds = list(range(args.seed, args.seed + args.seeds))
    results = []
    config = WorldConfig()
    with tqdm(total=args.impressions * len(seeds) * len(policies), unit="imp", unit_scale=True,
              disable=args.no_progress) as bar:  # fmt: skip
        for seed in seeds:
            if base_world is not None:
                if overrides:
                    raise ValueError("--set/--drift-at cannot change a world loaded with --world")
                world = base_world
            else:
                world = World.generate(WorldConfig(seed=seed).replace(**overrides))
            config = world.config
            if args.save_world and seed == seeds[0]:
                world.save(args.save_world)
            settings = RunSettings(args.impressions, args.window, args.snapshot_interval, args.buckets, seed)
            for policy in policies:
                bar.set_description(f"seed {seed} {policy}")
                if args.target:
                    results.append(_run_http(args, world, policy, params[policy], seed))
                    bar.update(args.impressions)
                else:
                    results.append(
                        run_inprocess(world, policy, params[policy], settings, lambda n: bar.update(n))
                    )
    argv = getattr(args, "argv", None) or sys.argv[1:]
    command = "artbandit " + " ".join(shlex.quote(a) for a in argv)
    report = Report(results, command, describe_world(config, args.window, args.snapshot_interval))
    report.write(args.out)
    print(
        report.summary()[["policy", "seeds", "expected_ctr", "fraction_of_oracle", "regret"]].to_string(
            index=False
        )
    )
    print(f"report written to {args.out}/ (summary.md, *.csv, *.parquet, *.png)")
    return 0


# What `simulate` uses for the options a scenario may fill in, when neither it nor the command line does.
SIMULATE_DEFAULTS: dict[str, Any] = {
    "policies": DEFAULT_POLICIES, "impressions": 200_000, "window": 60.0, "buckets": 50,
}  # fmt: skip


def _apply_scenario(args: argparse.Namespace) -> None:
    """Fill the options left unset: from the scenario (`--scenario`), else from SIMULATE_DEFAULTS."""
    from simulator.scenarios import get_scenario

    scenario = get_scenario(args.scenario) if getattr(args, "scenario", None) else None
    for name, default in SIMULATE_DEFAULTS.items():
        if getattr(args, name, None) is None:
            value = getattr(scenario, name) if scenario is not None else None
            setattr(args, name, default if value is None else value)
    args.scenario_world = dict(scenario.world) if scenario is not None else {}


def _run_http(args: argparse.Namespace, world: Any, policy: str, params: dict[str, Any], seed: int) -> Any:
    """The HTTP driver for `simulate --target URL`: each policy is PUT on the world's titles in turn."""
    import os

    from simulator.http_driver import HttpSettings, run_http

    settings = HttpSettings(
        base_url=args.target,
        impressions=args.impressions,
        rate=args.rate,
        concurrency=args.concurrency,
        time_scale=args.time_scale,
        api_key=args.api_key or os.environ.get("ARTBANDIT_API_KEY"),
        client_key=args.client_key or os.environ.get("ARTBANDIT_CLIENT_KEY"),
        buckets=args.buckets,
        seed=seed,
        page_size=args.page_size,
    )
    return run_http(world, policy, params, settings)


# ----------------------------------------------------------------------------- replay
def cmd_replay(args: argparse.Namespace) -> int:
    from service.reporting.evaluate import evaluate
    from simulator.logs import read_logs

    logs = read_logs(args.logs)
    params = parse_assignments(args.param, "--param")
    arms = [a.strip() for a in args.arms.split(",")] if args.arms else None
    result = evaluate(logs, args.policy, params, arms=arms, block=args.block, seed=args.seed)
    if args.json:
        print(json.dumps({"policy": args.policy, "params": params, "n": result.n,
                          "logged_value": result.logged_value, "notes": result.notes,
                          "estimates": [e.as_row() for e in result.estimates]}))  # fmt: skip
    else:
        print(f"candidate {args.policy} {params or ''} on {args.logs} ({result.n} events)")
        print(result.table())
    return 0


# ----------------------------------------------------------------------------- tune
def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """`--grid alpha=0.1,0.3 --grid floor=0.01` -> {"alpha": [0.1, 0.3], "floor": [0.01]}."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--grid must look like name=value1,value2,..., got {item!r}")
        if key in grid:
            raise ValueError(f"--grid {key} is given twice")
        parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if not parsed:
            raise ValueError(f"--grid {key}: give at least one value")
        grid[key] = parsed
    if not grid:
        raise ValueError("give at least one --grid name=value1,value2,...")
    return grid


def cmd_tune(args: argparse.Namespace) -> int:
    from service.reporting.tuning import tune
    from simulator.logs import read_logs

    grid = parse_grid(args.grid)
    fixed = parse_assignments(args.param, "--param")
    overlap = sorted(set(grid) & set(fixed))
    if overlap:
        raise ValueError(f"{', '.join(overlap)} given both as --grid and --param")
    logs = read_logs(args.logs)
    arms = [a.strip() for a in args.arms.split(",")] if args.arms else None
    result = tune(
        logs, args.policy, grid, alpha=args.alpha, block=args.block, seed=args.seed, arms=arms, fixed=fixed
    )
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        print(f"tuning {args.policy} {fixed or ''} on {args.logs} ({result.n} events, "
              f"{len(result.settings)} settings)")  # fmt: skip
        print(result.table())
    return 0


# ----------------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    from simulator.export import export_from_redis

    count = export_from_redis(args.redis_url, args.out, titles=args.title or None)
    print(f"wrote {count} decisions with outcomes to {args.out}")
    return 0


# ----------------------------------------------------------------------------- wiring
def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("simulate", help="run policies on a synthetic world and write a report")
    sim.add_argument(
        "--scenario",
        help="a named scenario (simulator/scenarios.py), e.g. launch: one new title, window 1800 s",
    )
    sim.add_argument("--policies", help=f"comma-separated (default {DEFAULT_POLICIES})")
    sim.add_argument("--impressions", type=int, help="default 200000")
    sim.add_argument("--seed", type=int, default=1, help="first seed")
    sim.add_argument(
        "--seeds", type=int, default=1, help="number of seeds (seed, seed+1, ...); >1 adds 95%% CIs"
    )
    sim.add_argument("--out", default="reports/run", help="output directory")
    sim.add_argument("--world", help="load this world (.json/.npz) instead of generating one per seed")
    sim.add_argument("--save-world", help="save the (first) generated world here (.json/.npz)")
    sim.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                     help="world knob, e.g. --set titles=5 --set context_noise=0.1")  # fmt: skip
    sim.add_argument("--drift-at", type=float, help="shortcut for --set drift_at=SECONDS")
    sim.add_argument("--param", action="append", default=[], metavar="POLICY.NAME=VALUE",
                     help="policy parameter, e.g. --param linucb.alpha=1.0")  # fmt: skip
    sim.add_argument("--window", type=float, help="attribution window, simulated seconds (default 60)")
    sim.add_argument("--snapshot-interval", type=float, default=1.0, help="seconds between publications")
    sim.add_argument("--buckets", type=int, help="points on the curves over time (default 50)")
    sim.add_argument("--no-progress", action="store_true")
    http = sim.add_argument_group("over HTTP (drive a running service instead of the in-process driver)")
    http.add_argument(
        "--target", metavar="URL", help="base URL of a running service, e.g. http://127.0.0.1:8000"
    )
    http.add_argument("--api-key", help="admin key to set the titles up (default: $ARTBANDIT_API_KEY)")
    http.add_argument(
        "--client-key",
        help="client key for /impression and /click, when the service requires one (default: "
        "$ARTBANDIT_CLIENT_KEY)",
    )
    http.add_argument("--rate", type=float, help="impressions per simulated second (default: the world's)")
    http.add_argument("--concurrency", type=int, default=32, help="requests in flight at most")
    http.add_argument(
        "--page-size", type=int, default=1,
        help="titles per request: > 1 sends pages of distinct titles to POST /impressions",
    )  # fmt: skip
    http.add_argument(
        "--time-scale", type=float, default=1.0, help="real seconds per simulated second (< 1: faster)"
    )
    sim.set_defaults(func=_guarded(cmd_simulate))

    rep = subparsers.add_parser("replay", help="evaluate a candidate policy on logged decisions (OPE)")
    rep.add_argument("logs", help="logs: .csv/.parquet (flat format) or .dsjson/.jsonl/.json (DSJSON)")
    rep.add_argument("--policy", required=True, help="candidate policy name, e.g. linucb")
    rep.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    rep.add_argument(
        "--arms", help="comma-separated artworks for the candidate (default: those the logs show)"
    )
    rep.add_argument("--block", type=int, default=1, help="events decided between the candidate's updates")
    rep.add_argument("--seed", type=int, default=1)
    rep.add_argument("--json", action="store_true", help="print the estimates as JSON")
    rep.set_defaults(func=_guarded(cmd_replay))

    tun = subparsers.add_parser(
        "tune", help="evaluate a grid of policy settings offline (DR); recommend one only if surely better"
    )
    tun.add_argument("logs", help="logs: .csv/.parquet (flat format) or .dsjson/.jsonl/.json (DSJSON)")
    tun.add_argument("--policy", required=True, help="candidate policy name, e.g. linucb")
    tun.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                     help="values to try, e.g. alpha=0.1,0.3,1,3 (repeatable: all combinations)")  # fmt: skip
    tun.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="fixed parameter")
    tun.add_argument("--arms", help="comma-separated artworks for the candidate (default: the logged ones)")
    tun.add_argument("--alpha", type=float, default=0.05,
                     help="error rate of the gate over the whole grid (Bonferroni)")  # fmt: skip
    tun.add_argument("--block", type=int, default=1, help="events decided between the candidate's updates")
    tun.add_argument("--seed", type=int, default=1)
    tun.add_argument("--json", action="store_true", help="print the result as JSON")
    tun.set_defaults(func=_guarded(cmd_tune))

    exp = subparsers.add_parser("export", help="write the service's logged decisions with outcomes")
    exp.add_argument("--redis-url", required=True)
    exp.add_argument("--out", required=True, help=".parquet, .csv (flat format) or .dsjson/.jsonl (DSJSON)")
    exp.add_argument("--title", action="append", default=[], help="only this title (repeatable)")
    exp.set_defaults(func=_guarded(cmd_export))


def _guarded(func: Any) -> Any:
    """Print a clear one-line error (ValueError and subclasses: bad input) instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="artbandit", description=__doc__.splitlines()[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommands(sub)
    args = parser.parse_args(argv)
    args.argv = argv
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
