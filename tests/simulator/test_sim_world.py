"""The synthetic world: reproducible for a seed, saved and reloaded exactly, knobs that do what they say."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from simulator.config import WorldConfig
from simulator.traffic import Impressions, Traffic
from simulator.world import World

SMALL = WorldConfig(viewers=300, titles=3, artworks=4, tastes=6, rate=50.0)


def _traffic(world: World, seed: int, n: int = 2000) -> Impressions:
    return Impressions.concat(list(Traffic(world, seed, n).chunks()))


def _same_world(a: World, b: World) -> None:
    assert a.config == b.config
    assert (
        a.title_ids == b.title_ids and a.artwork_ids == b.artwork_ids and a.feature_names == b.feature_names
    )
    for name in (
        "tastes",
        "base_logit",
        "popularity",
        "artwork_title",
        "appeal",
        "appeal_after",
        "bias",
        "pair",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_same_seed_same_world_and_traffic() -> None:
    a, b = World.generate(SMALL), World.generate(SMALL)
    _same_world(a, b)
    ta, tb = _traffic(a, 5), _traffic(b, 5)
    for field in ("time", "viewer", "title", "context", "views", "luck", "delay"):
        np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field), err_msg=field)


def test_other_seed_other_world_and_traffic() -> None:
    a, b = World.generate(SMALL), World.generate(SMALL.replace(seed=2))
    assert not np.allclose(a.tastes, b.tastes)
    assert not np.array_equal(_traffic(a, 5).viewer, _traffic(a, 6).viewer)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    world = World.generate(
        SMALL.replace(drift_at=10.0, new_artworks=1, new_artworks_at=5.0, nonlinearity=0.5)
    )
    loaded = World.load(world.save(tmp_path / f"world{suffix}"))
    _same_world(world, loaded)
    imp = _traffic(world, 3, 500)
    a = world.truth(imp.title, imp.viewer, imp.time, imp.views).probabilities
    b = loaded.truth(imp.title, imp.viewer, imp.time, imp.views).probabilities
    np.testing.assert_array_equal(a, b)


def test_load_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="format must be 'artbandit-world/1'"):
        World.load(path)
    with pytest.raises(ValueError, match=r"\.json or \.npz"):
        World.generate(SMALL).save(tmp_path / "w.pkl")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"viewers": 0}, "viewers must be in [1, inf]"),
        ({"fatigue": 1.0}, "fatigue must be in [0, 1)"),
        ({"returning": 1.5}, "returning must be in [0, 1]"),
        ({"artwork_tastes": 7}, "artwork_tastes must be in [1, tastes=6]"),
        ({"new_artworks": 2}, "needs new_artworks_at"),
        ({"base_rate_high": 0.01}, "base_rate_high must be >= base_rate_low"),
        ({"colour": 3}, "unknown world setting(s): colour"),
    ],
)
def test_config_errors_name_the_field(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        SMALL.replace(**changes)
    assert fragment in str(info.value)


def test_base_rates_are_a_few_percent_and_personalization_matters() -> None:
    world = World.generate(WorldConfig())
    base = 1 / (1 + np.exp(-world.base_logit))
    assert base.min() >= 0.02 and base.max() <= 0.06
    imp = _traffic(world, 1, 20_000)
    truth = world.truth(imp.title, imp.viewer, imp.time, imp.views)
    # the best artwork per viewer is worth much more than a random one
    assert truth.oracle.mean() > 1.5 * truth.uniform.mean()


def test_drift_changes_probabilities_only_after_drift_time() -> None:
    world = World.generate(SMALL.replace(drift_at=20.0))
    still = World.generate(SMALL)
    imp = _traffic(world, 1, 3000)
    p = world.truth(imp.title, imp.viewer, imp.time, imp.views).probabilities
    q = still.truth(imp.title, imp.viewer, imp.time, imp.views).probabilities
    before = imp.time < 20.0
    assert before.any() and (~before).any()
    np.testing.assert_array_equal(p[before], q[before])
    assert np.abs(p[~before] - q[~before]).mean() > 0.005


def test_new_artworks_exist_only_from_their_time() -> None:
    world = World.generate(SMALL.replace(new_artworks=2, new_artworks_at=15.0))
    assert world.arrival_times == [15.0]
    assert len(world.title_artworks(0, at=0.0)) == 4 and len(world.title_artworks(0)) == 6
    imp = _traffic(world, 1, 2000)
    truth = world.truth(imp.title, imp.viewer, imp.time, imp.views)
    late = imp.time >= 15.0
    assert not truth.available[~late][:, 4:].any()
    assert truth.available[late][:, 4:].all()
    assert (truth.probabilities[~late][:, 4:] == 0).all()


def test_returning_viewers_and_fatigue() -> None:
    world = World.generate(SMALL.replace(returning=0.9, fatigue=0.2))
    imp = _traffic(world, 1, 3000)
    new_share = len(np.unique(imp.viewer)) / len(imp)
    assert 0.07 < new_share < 0.13  # ~10% of impressions bring a new viewer
    # fatigue: the k-th view of a title by a viewer multiplies click probabilities by 0.8^min(k, 20)
    again = imp.views > 0
    fresh = world.truth(imp.title, imp.viewer, imp.time, np.zeros_like(imp.views)).probabilities
    tired = world.truth(imp.title, imp.viewer, imp.time, imp.views).probabilities
    np.testing.assert_allclose(
        tired[again], fresh[again] * (0.8 ** np.minimum(imp.views[again], 20))[:, None]
    )


def test_views_count_earlier_impressions_of_the_same_viewer_and_title() -> None:
    world = World.generate(SMALL.replace(fatigue=0.1))
    imp = _traffic(world, 2, 20_000)  # spans several chunks
    seen: dict[tuple[int, int], int] = {}
    expected = []
    for v, t in zip(imp.viewer.tolist(), imp.title.tolist(), strict=True):
        expected.append(seen.get((v, t), 0))
        seen[(v, t)] = seen.get((v, t), 0) + 1
    np.testing.assert_array_equal(imp.views, expected)


def test_views_are_only_tracked_with_fatigue_and_within_a_bound() -> None:
    assert not _traffic(World.generate(SMALL), 2, 3000).views.any()
    world = World.generate(SMALL.replace(titles=2, fatigue=0.1))
    many = np.broadcast_to(world.tastes[0], (30_000_000, world.tastes.shape[1]))  # no memory used
    big = dataclasses.replace(world, tastes=many)
    with pytest.raises(
        ValueError, match="with fatigue, viewers x titles must be <= 50,000,000, got 60,000,000"
    ):
        Traffic(big, 1, 10)
