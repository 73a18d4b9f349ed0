"""Run reports: tables (CSV and Parquet), plots (PNG) and a short markdown summary.

Several seeds are summarized by their mean and a 95% interval (Student t over seeds). Plots show the
expected CTR (click probability of the shown artwork, so click noise does not blur the curves), the
cumulative pseudo-regret, the fraction of the oracle reached, and each policy's traffic share per artwork
over time on the busiest title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.metrics import RunResult

# two-sided 95% Student t quantiles for 1..30 degrees of freedom; beyond, the normal 1.96
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
COLORS = {
    "linucb": "#1f77b4", "linear_ts": "#9467bd", "vw": "#2ca02c", "epsilon_greedy": "#ff7f0e",
    "uniform": "#7f7f7f", "fixed": "#8c564b",
}  # fmt: skip


def t95(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.959963984540054


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% interval over seeds (the interval is the mean itself for one seed)."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    half = t95(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return m, m - half, m + half


@dataclass
class Report:
    results: list[RunResult]
    command: str = ""
    world_description: str = ""

    @classmethod
    def load(cls, out: str | Path) -> Report:
        """Re-read a written report (its Parquet tables), e.g. to redraw the plots."""
        out = Path(out)
        runs = pd.read_parquet(out / "runs.parquet")
        ts = pd.read_parquet(out / "timeseries.parquet")
        share = pd.read_parquet(out / "traffic_share.parquet")
        summary_keys = [k for k in _SUMMARY_KEYS if k in runs.columns]
        results = []
        for _, row in runs.iterrows():
            policy, seed = str(row["policy"]), int(row["seed"])
            pick_ts = (ts["policy"] == policy) & (ts["seed"] == seed)
            pick_share = (share["policy"] == policy) & (share["seed"] == seed)
            extra = {k: row[k] for k in runs.columns if k not in (*summary_keys, "policy", "seed")}
            results.append(
                RunResult(
                    policy,
                    seed,
                    {k: float(row[k]) for k in summary_keys},
                    ts[pick_ts].drop(columns=["policy", "seed"]).reset_index(drop=True),
                    share[pick_share].drop(columns=["policy", "seed"]).reset_index(drop=True),
                    extra,
                )
            )
        md = out / "summary.md"
        command, world = "", ""
        if md.exists():
            lines = md.read_text().splitlines()
            command = next((ln[len("Command: `") : -1] for ln in lines if ln.startswith("Command: `")), "")
            world = next((ln for ln in lines if ln.startswith("World: ")), "")
        return cls(results, command, world)

    # ----------------------------------------------------------------- tables
    def runs(self) -> pd.DataFrame:
        return pd.DataFrame([r.summary_row() for r in self.results])

    def summary(self) -> pd.DataFrame:
        """One row per policy: mean and 95% interval over seeds of the headline metrics."""
        runs = self.runs()
        rows = []
        for policy, group in runs.groupby("policy", sort=False):
            row: dict[str, Any] = {"policy": policy, "seeds": len(group)}
            for metric in (
                "expected_ctr",
                "ctr",
                "fraction_of_oracle",
                "fraction_of_oracle_last_half",
                "regret",
            ):
                m, lo, hi = mean_ci(group[metric].tolist())
                row.update({metric: m, f"{metric}_low": lo, f"{metric}_high": hi})
            row["oracle_ctr"] = float(group["oracle_ctr"].mean())
            row["uniform_ctr"] = float(group["uniform_ctr"].mean())
            row["impressions_per_second"] = float(group["impressions_per_second"].mean())
            rows.append(row)
        return pd.DataFrame(rows)

    def timeseries(self) -> pd.DataFrame:
        return pd.concat(
            [r.timeseries.assign(policy=r.policy, seed=r.seed) for r in self.results], ignore_index=True
        )

    def traffic_share(self) -> pd.DataFrame:
        return pd.concat(
            [r.traffic_share.assign(policy=r.policy, seed=r.seed) for r in self.results], ignore_index=True
        )

    # ----------------------------------------------------------------- writing
    def write(self, out: str | Path) -> list[Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        tables = {
            "runs": self.runs(),
            "summary": self.summary(),
            "timeseries": self.timeseries(),
            "traffic_share": self.traffic_share(),
        }
        for name, frame in tables.items():
            frame.to_csv(out / f"{name}.csv", index=False)
            frame.to_parquet(out / f"{name}.parquet", index=False)
            written += [out / f"{name}.csv", out / f"{name}.parquet"]
        written += self.plot(out)
        (out / "summary.md").write_text(self.markdown())
        written.append(out / "summary.md")
        return written

    def markdown(self, image_dir: str = "", image_prefix: str = "") -> str:
        s = self.summary()
        seeds = int(s["seeds"].max()) if len(s) else 0
        lines = [
            "# Simulation summary",
            "",
            f"Command: `{self.command}`" if self.command else "",
            "",
            self.world_description,
            "",
            f"Mean over {seeds} seed(s)" + (", with 95% intervals over seeds." if seeds > 1 else "."),
            f"Oracle CTR {s['oracle_ctr'].mean():.4f}; uniform CTR {s['uniform_ctr'].mean():.4f}.",
            "",
            "| policy | expected CTR | fraction of oracle | last half | cumulative regret | sim. imp/s |",
            "|---|---|---|---|---|---|",
        ]
        for _, r in s.iterrows():
            lines.append(
                f"| {r['policy']} | {_fmt(r, 'expected_ctr', 4)} | {_fmt(r, 'fraction_of_oracle', 3)} "
                f"| {_fmt(r, 'fraction_of_oracle_last_half', 3)} | {_fmt(r, 'regret', 0)} "
                f"| {r['impressions_per_second']:,.0f} |"
            )
        lines += [
            "",
            "Expected CTR: mean click probability of the shown artwork. Fraction of oracle: expected CTR",
            "over the CTR of showing each viewer their best artwork; 'last half': second half of the run.",
            "Regret: sum over impressions of (oracle click probability - shown artwork's click probability).",
            "",
        ]
        for name in PLOTS:
            lines.append(f"![{name}]({image_dir}{image_prefix}{name}.png)")
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------- plots
    def plot(self, out: Path, prefix: str = "") -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ts = self.timeseries()
        paths = []
        for name, draw in (
            ("ctr_over_time", _plot_ctr),
            ("cumulative_regret", _plot_regret),
            ("fraction_of_oracle", _plot_fraction),
            ("traffic_share", _plot_share),
        ):
            fig = draw(self, ts, plt)
            path = out / f"{prefix}{name}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            paths.append(path)
        return paths


_SUMMARY_KEYS = (
    "impressions", "ctr", "expected_ctr", "oracle_ctr", "uniform_ctr", "fraction_of_oracle", "regret",
    "fraction_of_oracle_last_half",
)  # fmt: skip
PLOTS = ("ctr_over_time", "cumulative_regret", "fraction_of_oracle", "traffic_share")


def _fmt(row: pd.Series, metric: str, digits: int) -> str:
    m, lo, hi = row[metric], row[f"{metric}_low"], row[f"{metric}_high"]
    if row["seeds"] < 2:
        return f"{m:,.{digits}f}"
    return f"{m:,.{digits}f} [{lo:,.{digits}f}, {hi:,.{digits}f}]"


def _band(ts: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per policy and bucket: mean and 95% interval over seeds of `column`."""
    rows = []
    for (policy, bucket), group in ts.groupby(["policy", "bucket"], sort=False):
        m, lo, hi = mean_ci(group[column].tolist())
        x = float(group["impressions_end"].mean())
        rows.append({"policy": policy, "bucket": bucket, "x": x, "mean": m, "low": lo, "high": hi})
    return pd.DataFrame(rows)


def _thousands(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))


def _lines(ax: Any, band: pd.DataFrame, bands: bool) -> None:
    for policy, g in band.groupby("policy", sort=False):
        color = COLORS.get(str(policy))
        ax.plot(g["x"], g["mean"], label=policy, color=color, lw=1.6)
        if bands:
            ax.fill_between(g["x"], g["low"], g["high"], color=color, alpha=0.15, lw=0)


def _seeds(ts: pd.DataFrame) -> int:
    return int(ts.groupby("policy")["seed"].nunique().min())


def _plot_ctr(report: Report, ts: pd.DataFrame, plt: Any) -> Any:
    """Left: expected CTR per interval with the oracle and uniform levels. Right: the same as a fraction
    of the oracle, which is comparable across seeds (each seed may be a different world)."""
    bands = _seeds(ts) >= 3
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.0))
    _lines(left, _band(ts, "expected_ctr"), bands)
    ref = ts.groupby("bucket")[["impressions_end", "oracle_ctr", "uniform_ctr"]].mean()
    left.plot(ref["impressions_end"], ref["oracle_ctr"], "k--", lw=1, label="oracle")
    left.plot(ref["impressions_end"], ref["uniform_ctr"], "k:", lw=1, label="uniform, expected")
    left.set(xlabel="impressions", ylabel="expected CTR per interval", title="CTR over time")
    left.set_ylim(bottom=0)
    left.legend(fontsize=7, ncol=2, loc="lower right")
    _lines(right, _band(ts, "fraction_of_oracle"), bands)
    right.axhline(1.0, color="k", ls="--", lw=1)
    right.set(xlabel="impressions", ylabel="expected CTR / oracle CTR", title="Fraction of oracle over time")
    right.set_ylim(0, 1.05)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        _thousands(ax)
    if bands:
        fig.text(0.99, 0.01, "bands: 95% interval over seeds", ha="right", fontsize=7)
    fig.tight_layout()
    return fig


def _plot_regret(report: Report, ts: pd.DataFrame, plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(8, 4.2))
    _lines(ax, _band(ts, "cumulative_regret"), _seeds(ts) >= 3)
    ax.set(xlabel="impressions", ylabel="cumulative regret (clicks)", title="Cumulative regret vs oracle")
    _thousands(ax)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _plot_fraction(report: Report, ts: pd.DataFrame, plt: Any) -> Any:
    s = report.summary()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    y = np.arange(len(s))
    for offset, metric, label, alpha in (
        (-0.2, "fraction_of_oracle", "whole run", 0.55),
        (0.2, "fraction_of_oracle_last_half", "second half", 1.0),
    ):
        err = np.vstack([s[metric] - s[f"{metric}_low"], s[f"{metric}_high"] - s[metric]])
        colors = [COLORS.get(p, "#333333") for p in s["policy"]]
        ax.barh(
            y + offset, s[metric], height=0.38, xerr=err, color=colors, alpha=alpha, label=label, capsize=3
        )
    ax.set_yticks(y, s["policy"])
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=1)
    ax.set(xlabel="fraction of oracle CTR", title="Fraction of oracle (faded: whole run; solid: second half)")
    ax.set_xlim(0, 1.05)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def _plot_share(report: Report, ts: pd.DataFrame, plt: Any) -> Any:
    share = report.traffic_share()
    seed = int(share["seed"].min())  # one seed: with generated worlds, each seed is another world
    busiest = share["title_id"].iloc[0]
    share = share[(share["title_id"] == busiest) & (share["seed"] == seed)]
    policies = list(dict.fromkeys(share["policy"]))
    if "oracle_share" in share.columns:  # the oracle's choices on the same traffic, as a last panel
        first = share[share["policy"] == policies[0]]
        share = pd.concat(
            [share, first.assign(policy="oracle", share=first["oracle_share"])], ignore_index=True
        )
        policies.append("oracle")
    cols = min(3, len(policies))
    rows = math.ceil(len(policies) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False, sharey=True)
    xmap = ts[ts["seed"] == seed].groupby("bucket")["impressions_end"].mean()
    for ax, policy in zip(axes.flat, policies, strict=False):
        g = share[share["policy"] == policy].groupby(["artwork_id", "bucket"], sort=False)["share"].mean()
        table = g.unstack("bucket")
        x = xmap.reindex(table.columns).to_numpy()
        labels = [a.rsplit("-", 2)[-2] + a.rsplit("-", 1)[-1] if "-art-" in a else a for a in table.index]
        ax.stackplot(x, table.to_numpy(), labels=labels, alpha=0.9)
        ax.set_title("oracle (each viewer's best)" if policy == "oracle" else str(policy), fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_xlabel("impressions", fontsize=8)
        ax.tick_params(labelsize=7)
        _thousands(ax)
    for ax in list(axes.flat)[len(policies) :]:
        ax.axis("off")
    axes[0][0].set_ylabel("traffic share")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=7, ncol=1, title=str(busiest), title_fontsize=7)
    fig.suptitle(
        f"Traffic share per artwork over time ({busiest}, the busiest title; seed {seed})", fontsize=10
    )
    fig.tight_layout(rect=(0, 0, 0.9, 0.95))
    return fig
