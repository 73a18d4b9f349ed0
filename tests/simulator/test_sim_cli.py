"""`simulate`, `replay` (and their refusals) through the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from policies import create_policy
from simulator.cli import add_subcommands, main, parse_value, policy_params
from simulator.config import WorldConfig
from simulator.logs import write_flat
from simulator.report import Report
from simulator.synthetic_logs import simulate_logs
from simulator.world import World

TINY = ["--set", "titles=2", "--set", "viewers=200", "--set", "artworks=3", "--set", "tastes=4"]


def test_simulate_writes_tables_plots_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["simulate", "--policies", "linucb,uniform", "--impressions", "1500", "--seeds", "2",
            "--out", str(out), "--param", "linucb.alpha=2.0", "--buckets", "5", "--no-progress",
            *TINY]  # fmt: skip
    assert main(argv) == 0
    for name in ("runs", "summary", "timeseries", "traffic_share"):
        assert (out / f"{name}.csv").exists() and (out / f"{name}.parquet").exists()
    for name in ("ctr_over_time", "cumulative_regret", "fraction_of_oracle", "traffic_share"):
        assert (out / f"{name}.png").stat().st_size > 1000
    summary = pd.read_csv(out / "summary.csv")
    assert summary["policy"].tolist() == ["linucb", "uniform"] and (summary["seeds"] == 2).all()
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["seed"].unique().tolist()) == [1, 2]
    md = (out / "summary.md").read_text()
    assert "artbandit simulate --policies linucb,uniform" in md and "| linucb |" in md
    assert "report written" in capsys.readouterr().out
    again = Report.load(out)
    assert again.command.startswith("artbandit simulate") and again.world_description.startswith("World:")
    pd.testing.assert_frame_equal(again.summary(), pd.read_parquet(out / "summary.parquet"))
    assert len(again.plot(tmp_path, prefix="again_")) == 4


def test_simulate_saves_and_reloads_a_world(tmp_path: Path) -> None:
    world_path = tmp_path / "world.npz"
    common = ["--policies", "uniform", "--impressions", "500", "--no-progress", "--buckets", "5"]
    assert (
        main(["simulate", *common, *TINY, "--save-world", str(world_path), "--out", str(tmp_path / "a")]) == 0
    )
    assert main(["simulate", *common, "--world", str(world_path), "--out", str(tmp_path / "b")]) == 0
    a = pd.read_csv(tmp_path / "a" / "runs.csv")
    b = pd.read_csv(tmp_path / "b" / "runs.csv")
    assert a["expected_ctr"].tolist() == b["expected_ctr"].tolist()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--param", "nobody.alpha=1"], "policy 'nobody' is not in --policies"),
        (["--param", "alpha"], "--param must look like name=value"),
        (["--set", "fatigue=2"], "fatigue must be in [0, 1)"),
        (["--policies", "nope"], "unknown policy 'nope'"),
    ],
)
def test_simulate_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    base = [
        "simulate",
        "--policies",
        "uniform",
        "--impressions",
        "100",
        "--no-progress",
        "--out",
        str(tmp_path),
    ]
    if argv[0] == "--policies":
        base = base[:1] + base[3:]
    assert main([*base, *TINY, *argv]) == 2
    assert fragment in capsys.readouterr().err


def _logs(tmp_path: Path) -> Path:
    world = World.generate(WorldConfig(titles=1, artworks=3, tastes=4, viewers=200))
    arms = world.title_artworks(0)
    logs = simulate_logs(world, lambda t: create_policy("uniform", arms, world.feature_names, seed=1), 400, 1)
    return write_flat(logs.data, tmp_path / "logs.csv")


def test_replay_prints_estimates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _logs(tmp_path)
    assert main(["replay", str(path), "--policy", "linucb", "--param", "alpha=1.0"]) == 0
    out = capsys.readouterr().out
    for name in ("replay", "ips", "snips", "dr", "95% interval", "ESS"):
        assert name in out
    assert main(["replay", str(path), "--policy", "epsilon_greedy", "--json", "--block", "20"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["estimator"] for e in data["estimates"]] == ["replay", "ips", "snips", "dr"]
    assert data["n"] == 400


def test_replay_refuses_logs_without_propensities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _logs(tmp_path)
    frame = pd.read_csv(path).drop(columns=["propensity"])
    frame.to_csv(path, index=False)
    assert main(["replay", str(path), "--policy", "linucb"]) == 2
    assert "column 'propensity' is missing" in capsys.readouterr().err


def test_add_subcommands_registers_three_commands() -> None:
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="command"))
    commands = {
        "simulate": ["simulate"],
        "replay": ["replay", "logs.csv", "--policy", "linucb"],
        "export": ["export", "--redis-url", "redis://127.0.0.1:1/0", "--out", "logs.parquet"],
    }
    for argv in commands.values():
        assert callable(parser.parse_args(argv).func)


def test_parameter_values() -> None:
    assert parse_value("1.5") == 1.5 and parse_value("3") == 3 and parse_value("true") is True
    assert parse_value("art-1") == "art-1" and parse_value('"7"') == "7"
    assert policy_params(["alpha=1", "linucb.alpha=2"], ["linucb", "linear_ts"]) == {
        "linucb": {"alpha": 2},
        "linear_ts": {"alpha": 1},
    }
