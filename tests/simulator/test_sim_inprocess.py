"""The in-process driver: hand-checked oracle/regret arithmetic and the service's semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.config import WorldConfig
from simulator.inprocess import InProcessRun, RunSettings, run_inprocess
from simulator.metrics import Recorder
from simulator.traffic import Impressions, Traffic
from simulator.world import World


def tiny_world() -> World:
    """Two viewers with opposite tastes, one title, two artworks.

    Viewer 0 (taste +1): P(click art1) = sigmoid(ln 3) = 3/4, P(click art2) = sigmoid(-ln 3) = 1/4.
    Viewer 1 (taste -1): the reverse. So the oracle CTR is 3/4 and uniform is 1/2 for everybody.
    """
    config = WorldConfig(
        viewers=2, titles=1, artworks=2, tastes=1, artwork_tastes=1, appeal_strength=math.log(3),
        artwork_bias_sd=0.0, rate=10.0, returning=0.5, click_delay_median=0.0,
    )  # fmt: skip
    one = np.array([[1.0], [-1.0]])
    return World(
        config=config, feature_names=["romance"], title_ids=["t"], artwork_ids=["t-art-1", "t-art-2"],
        tastes=one, base_logit=np.zeros(1), popularity=np.ones(1), artwork_title=np.zeros(2, dtype=np.int64),
        appeal=one, appeal_after=one, bias=np.zeros(2), pair=np.zeros((2, 2), dtype=np.int64),
        appears_at=np.zeros(2),
    )  # fmt: skip


def test_tiny_world_probabilities_by_hand() -> None:
    world = tiny_world()
    truth = world.truth(
        np.zeros(2, dtype=np.int64), np.array([0, 1]), np.zeros(2), np.zeros(2, dtype=np.int64)
    )
    np.testing.assert_allclose(truth.probabilities, [[0.75, 0.25], [0.25, 0.75]])
    np.testing.assert_allclose(truth.oracle, [0.75, 0.75])
    np.testing.assert_allclose(truth.uniform, [0.5, 0.5])


def test_oracle_regret_and_fraction_on_the_tiny_world() -> None:
    """Always art1: viewer 0 clicks with 3/4, viewer 1 with 1/4; each viewer-1 impression costs 1/2."""
    world = tiny_world()
    n = 1000
    settings = RunSettings(impressions=n, window=5.0, snapshot_interval=1.0, buckets=10, seed=3)
    result = run_inprocess(world, "fixed", {"arm": "t-art-1", "floor": 1e-12}, settings)
    viewers = Impressions.concat(list(Traffic(world, 3, n).chunks())).viewer
    n1 = int((viewers == 1).sum())
    assert 0 < n1 < n
    s = result.summary
    assert s["oracle_ctr"] == pytest.approx(0.75, abs=1e-12)
    assert s["uniform_ctr"] == pytest.approx(0.5, abs=1e-12)
    assert s["expected_ctr"] == pytest.approx((0.75 * (n - n1) + 0.25 * n1) / n, abs=1e-9)
    assert s["regret"] == pytest.approx(0.5 * n1, abs=1e-6)
    assert s["fraction_of_oracle"] == pytest.approx(s["expected_ctr"] / 0.75, abs=1e-12)
    ts = result.timeseries
    assert ts["cumulative_regret"].iloc[-1] == pytest.approx(0.5 * n1, abs=1e-6)
    assert ts["impressions_end"].iloc[-1] == n


def test_recorder_arithmetic() -> None:
    rec = Recorder(total=4, buckets=2, n_titles=1, n_slots=2)
    zero = np.zeros(4, dtype=np.int64)
    rec.add(
        np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]), zero, np.array([0, 1, 1, 1]),
        expected=np.array([0.1, 0.2, 0.3, 0.4]), oracle=np.array([0.5, 0.5, 0.4, 0.4]),
        uniform=np.array([0.3, 0.3, 0.3, 0.3]), reward=np.array([0.0, 1.0, 0.0, 0.0]),
    )  # fmt: skip
    ts = rec.timeseries()
    np.testing.assert_allclose(ts["expected_ctr"], [0.15, 0.35])
    np.testing.assert_allclose(ts["ctr"], [0.5, 0.0])
    np.testing.assert_allclose(ts["cumulative_regret"], [0.7, 0.8])
    np.testing.assert_allclose(ts["time_end"], [2.0, 4.0])
    share = rec.traffic_share(["t"], [["a", "b"]])
    assert share.query("bucket == 0")["share"].tolist() == [0.5, 0.5]
    assert share.query("bucket == 1")["share"].tolist() == [0.0, 1.0]
    assert rec.summary()["fraction_of_oracle"] == pytest.approx(1.0 / 1.8)


SMALL = WorldConfig(viewers=500, titles=2, artworks=4, tastes=6, rate=100.0, click_delay_median=2.0)


def test_same_seed_same_result() -> None:
    world = World.generate(SMALL)
    settings = RunSettings(impressions=3000, window=10.0, seed=4)
    a = run_inprocess(world, "linucb", {}, settings)
    b = run_inprocess(world, "linucb", {}, settings)
    assert a.summary == b.summary
    assert a.timeseries.equals(b.timeseries)


def test_decisions_come_only_from_published_snapshots() -> None:
    """With no publication during the run, LinUCB serves its initial (all-tied) state: exactly uniform."""
    world = World.generate(SMALL)
    frozen = RunSettings(impressions=4000, window=10.0, snapshot_interval=1e9, seed=2)
    linucb = run_inprocess(world, "linucb", {"early_updates": False}, frozen)
    uniform = run_inprocess(world, "uniform", {}, frozen)
    assert linucb.extra["learned"] > 3000  # the learning policy did learn...
    assert linucb.summary["expected_ctr"] == pytest.approx(
        uniform.summary["expected_ctr"], abs=1e-12
    )  # ...unseen


def test_every_impression_gets_exactly_one_label() -> None:
    world = World.generate(SMALL)
    run = InProcessRun(
        world, "epsilon_greedy", {"early_updates": False}, RunSettings(impressions=5000, window=10.0, seed=1)
    )
    result = run.run()
    assert result.extra["learned"] + result.extra["labels_pending_at_end"] == 5000
    assert run.book.skipped == {"no_policy": 0, "unknown_arm": 0, "invalid": 0}


def test_clicks_after_the_window_are_not_rewarded() -> None:
    world = World.generate(SMALL.replace(click_delay_median=50.0, click_delay_sigma=0.0))
    result = run_inprocess(world, "uniform", {}, RunSettings(impressions=3000, window=10.0, seed=1))
    assert result.summary["ctr"] == 0.0
    assert result.extra["clicks_any_time"] > 100


def test_immediate_clicks_are_all_rewarded() -> None:
    world = World.generate(SMALL.replace(click_delay_median=0.0))
    result = run_inprocess(world, "uniform", {}, RunSettings(impressions=3000, window=10.0, seed=1))
    assert result.extra["clicks_in_window"] == result.extra["clicks_any_time"] > 100


def test_new_artworks_are_added_and_served_from_their_time() -> None:
    world = World.generate(SMALL.replace(new_artworks=1, new_artworks_at=20.0))
    run = InProcessRun(world, "uniform", {}, RunSettings(impressions=4000, window=10.0, buckets=40, seed=1))
    result = run.run()
    for key, policy in run.book.policies.items():
        assert len(policy.arms) == 5, key
    share = result.traffic_share
    new = share[share["artwork_id"].str.endswith("-art-5")].merge(result.timeseries, on="bucket")
    assert (new.query("time_end < 20")["share"] == 0).all()
    assert (new.query("time_end > 21")["share"] > 0).mean() > 0.8


@pytest.mark.slow
def test_linucb_learns_and_beats_uniform() -> None:
    world = World.generate(SMALL)
    settings = RunSettings(impressions=30_000, window=10.0, seed=1)
    linucb = run_inprocess(world, "linucb", {}, settings).summary
    uniform = run_inprocess(world, "uniform", {}, settings).summary
    assert linucb["fraction_of_oracle_last_half"] > uniform["fraction_of_oracle_last_half"] + 0.15
    assert linucb["regret"] < 0.8 * uniform["regret"]
