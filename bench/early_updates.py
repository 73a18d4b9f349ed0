"""Early updates vs deadline-only learning: launch day, steady state and drift, several seeds.

    python bench/early_updates.py [--seeds 5] [--jobs 2] [--out reports/early] [--only launch,steady,drift]
    python bench/early_updates.py --analyze-only --out reports/early   # tables and plots from saved runs

Each case runs `artbandit simulate` per seed and mode (`--param linucb.early_updates=false|true`) and
reads the runs' runs.csv and timeseries.csv. Launch (`--scenario launch`: one new title, window 1800 s,
30 impressions/s, 2 simulated hours): the fraction of the oracle over the first 10, 30 and 60 minutes.
Steady state (the default world, 200,000 impressions) and drift (the same, appeal drifting at 500 s of
1,000 simulated seconds): the fraction over the run.
Prints markdown tables (mean and 95% t-interval over seeds) and writes plots to docs/img/.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.cli import main as artbandit
from simulator.report import mean_ci

MODES = ("false", "true")
LABEL = {"false": "deadline-only", "true": "early updates"}
CASES = {
    # the first simulated hour of the launch scenario (the table's horizon): the traffic and the policy's
    # draws of that hour are those of the full two-hour run (one seeded stream), at half the cost
    "launch": ["--scenario", "launch", "--impressions", "108000", "--buckets", "60"],
    "steady": ["--policies", "linucb"],
    "drift": ["--policies", "linucb", "--drift-at", "500"],
}
LAUNCH_MINUTES = (10, 30, 60)


def job(case: str, mode: str, seed: int, out: Path) -> list[str]:
    """argv of one run (`artbandit simulate ...`): one case, mode and seed, in its own directory, so runs
    can go in parallel and a finished seed is kept whatever happens to the others."""
    where = out / f"{case}-{mode}" / f"seed{seed}"
    return ["simulate", *CASES[case], "--seed", str(seed), "--seeds", "1", "--no-progress",
            "--param", f"linucb.early_updates={mode}", "--out", str(where)]  # fmt: skip


def _read(out: Path, case: str, mode: str, table: str) -> pd.DataFrame:
    paths = sorted((out / f"{case}-{mode}").glob(f"seed*/{table}.csv"))
    if not paths:
        raise FileNotFoundError(f"no runs under {out / f'{case}-{mode}'}")
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def _timeseries(out: Path, case: str, mode: str) -> pd.DataFrame:
    return _read(out, case, mode, "timeseries")


def fraction_until(ts: pd.DataFrame, seconds: float) -> float:
    """Fraction of the oracle from the start to the bucket boundary nearest `seconds` (one seed; inf: the
    whole run)."""
    if seconds == np.inf:
        return float(ts["cumulative_fraction_of_oracle"].iloc[-1])
    row = ts.iloc[int(np.argmin(np.abs(ts["time_end"].to_numpy() - seconds)))]
    return float(row["cumulative_fraction_of_oracle"])


def _cell(values: list[float]) -> str:
    m, lo, hi = mean_ci(values)
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def launch_table(out: Path) -> str:
    lines = [
        "| learning | " + " | ".join(f"first {m} min" for m in LAUNCH_MINUTES) + " | seeds |",
        "|---|" + "---:|" * (len(LAUNCH_MINUTES) + 1),
    ]
    for mode in MODES:
        ts = _timeseries(out, "launch", mode)
        cells = []
        for minutes in LAUNCH_MINUTES:
            per_seed = [fraction_until(g, minutes * 60.0) for _, g in ts.groupby("seed")]
            cells.append(_cell(per_seed))
        lines.append(f"| {LABEL[mode]} | " + " | ".join(cells) + f" | {ts['seed'].nunique()} |")
    return "\n".join(lines)


def run_table(out: Path, case: str) -> str:
    lines = ["| learning | fraction of oracle | last half | seeds |", "|---|---:|---:|---:|"]
    for mode in MODES:
        runs = _read(out, case, mode, "runs")
        lines.append(
            f"| {LABEL[mode]} | {_cell(runs['fraction_of_oracle'].tolist())} | "
            f"{_cell(runs['fraction_of_oracle_last_half'].tolist())} | {len(runs)} |"
        )
    return "\n".join(lines)


def paired_difference(out: Path, case: str) -> str:
    """early - deadline per seed (the same world and traffic per seed: common random numbers)."""
    a = _read(out, case, "true", "runs").set_index("seed")["fraction_of_oracle"]
    b = _read(out, case, "false", "runs").set_index("seed")["fraction_of_oracle"]
    return _cell((a - b).dropna().tolist())


def plot_launch(out: Path, img: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for column, name, title in (
        ("cumulative_fraction_of_oracle", "launch_cumulative_fraction.png",
         "Launch day: fraction of the oracle since launch"),
        ("fraction_of_oracle", "launch_fraction_by_minute.png",
         "Launch day: fraction of the oracle, minute by minute"),
    ):  # fmt: skip
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for mode, color in zip(MODES, ("tab:orange", "tab:blue"), strict=True):
            ts = _timeseries(out, "launch", mode)
            ts = ts[ts["bucket"] < 60]  # the first hour (one-minute buckets), which every run covers
            minutes = ts.groupby("bucket")["time_end"].mean() / 60.0
            stats = ts.groupby("bucket")[column].apply(lambda v: pd.Series(mean_ci(v.tolist()))).unstack()
            ax.plot(minutes, stats[0], color=color, label=LABEL[mode])
            ax.fill_between(minutes, stats[1], stats[2], color=color, alpha=0.25, linewidth=0)
        ax.axvline(30, color="grey", linestyle=":", linewidth=1)
        ax.text(30.5, 0.05, "window closes for\nthe first impressions", fontsize=8, color="grey")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("simulated minutes since launch")
        ax.set_ylabel("fraction of oracle CTR")
        ax.set_title(f"{title} (mean and 95% interval, {ts['seed'].nunique()} seeds)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        path = img / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="reports/early")
    ap.add_argument("--only", default="launch,steady,drift")
    ap.add_argument("--img", default="docs/img")
    ap.add_argument("--analyze-only", action="store_true")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    args = ap.parse_args()
    out, img = Path(args.out), Path(args.img)
    cases = [c for c in args.only.split(",") if c]
    if not args.analyze_only:
        argvs = [job(c, m, s, out) for c in cases for m in MODES for s in range(1, args.seeds + 1)]
        with ProcessPoolExecutor(args.jobs) as pool:
            for code in pool.map(artbandit, argvs):
                if code:
                    raise SystemExit(code)
    if "launch" in cases:
        print("Launch day (fraction of the oracle from launch to the minute named):\n")
        print(launch_table(out))
        print("\nplots:", *plot_launch(out, img))
    for case in ("steady", "drift"):
        if case in cases:
            print(f"\n{case}:\n")
            print(run_table(out, case))
            print(f"\nearly - deadline, paired by seed: {paired_difference(out, case)}")


if __name__ == "__main__":
    main()
