"""Early updates in the simulator: the launch scenario, and learning inside the first window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.cli import main
from simulator.config import WorldConfig
from simulator.inprocess import RunSettings, run_inprocess
from simulator.world import World


def test_launch_scenario_fills_in_its_world_and_run(tmp_path: Path) -> None:
    out = tmp_path / "launch"
    argv = ["simulate", "--scenario", "launch", "--impressions", "1200", "--seeds", "1", "--no-progress",
            "--param", "linucb.early_updates=true", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    md = (out / "summary.md").read_text()
    assert "World: 1 titles x 8 artworks" in md and "30 impressions/s" in md
    assert "attribution window 1800 s" in md and "median 60 s, sigma 1.5" in md
    runs = pd.read_csv(out / "runs.csv")
    assert runs["policy"].tolist() == ["linucb"]
    assert runs["decided_early"].iloc[0] == 1200 and runs["learned"].iloc[0] == 0
    ts = pd.read_csv(out / "timeseries.csv")
    assert len(ts) == 120 and "cumulative_fraction_of_oracle" in ts.columns


def test_command_line_wins_over_the_scenario(tmp_path: Path) -> None:
    out = tmp_path / "launch"
    argv = ["simulate", "--scenario", "launch", "--impressions", "600", "--window", "90", "--buckets", "6",
            "--set", "rate=10", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    md = (out / "summary.md").read_text()
    assert "attribution window 90 s" in md and "10 impressions/s" in md
    assert len(pd.read_csv(out / "timeseries.csv")) == 6


def test_unknown_scenario_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["simulate", "--scenario", "moon", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "unknown scenario 'moon'; known: launch" in capsys.readouterr().err


def test_early_updates_learn_inside_the_first_window() -> None:
    """One new title, a 300 s window: deadline-only learning serves at random until the first labels
    arrive; early updates already serve close to the oracle. Fixed seed; the margin is wide."""
    world = World.generate(
        WorldConfig(seed=3, titles=1, rate=30.0, click_delay_median=20.0, click_delay_sigma=1.0)
    )
    settings = RunSettings(impressions=9000, window=300.0, snapshot_interval=5.0, buckets=10, seed=3)
    early = run_inprocess(world, "linucb", {"early_updates": True}, settings)
    deadline = run_inprocess(world, "linucb", {"early_updates": False}, settings)
    first_window = lambda r: float(  # noqa: E731
        r.timeseries.loc[np.argmin(np.abs(r.timeseries["time_end"] - 300.0)), "cumulative_fraction_of_oracle"]
    )
    assert first_window(early) > first_window(deadline) + 0.15
    assert early.extra["decided_early"] == 9000 and early.extra["learned"] == 0
    assert 0 < early.extra["rewarded_early"] <= early.extra["clicks_in_window"]
    assert deadline.extra["decided_early"] == 0
    # the default learns early, driven the early way in-process: the same run as the explicit setting
    default = run_inprocess(world, "linucb", {}, settings)
    assert default.summary == early.summary
    assert default.extra["decided_early"] == 9000 and default.extra["learned"] == 0
