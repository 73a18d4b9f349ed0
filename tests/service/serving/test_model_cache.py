"""A worker's cache: version 0 before the first snapshot, new snapshots swapped in by one cheap check,
own random stream per worker, catalog changes followed."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis as redis_lib

from service.catalog import TitleConfig, parse_title
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.learning.learner import Learner
from service.serving.model_cache import ModelCache
from service.store import catalog

T0 = 1_700_000_000.0


def title(title_id: str = "t1", artworks: tuple[str, ...] = ("a", "b", "c"), **extra: Any) -> TitleConfig:
    return parse_title(
        title_id, {"features": ["romance"], "artworks": [{"id": a} for a in artworks], **extra}
    )


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return Settings.load({"redis_url": redis_server.url, "refresh_interval": 0.25}, environ={})


def test_fresh_policy_before_the_first_snapshot(redis: redis_lib.Redis, settings: Settings) -> None:
    catalog.save_title(redis, title())
    cache = ModelCache(redis, settings)
    cfg = cache.title("t1")
    assert cfg is not None and cache.title("nope") is None
    policy, version = cache.policy(cfg, "default")
    assert version == 0 and policy.name == "linucb" and policy.arms == ["a", "b", "c"]
    assert cache.policy(cfg, "default")[0] is policy  # cached, not rebuilt


def test_new_snapshot_is_swapped_in_after_one_check(
    redis: redis_lib.Redis, settings: Settings, round_trips: list[int]
) -> None:
    for t in ("t1", "t2", "t3"):
        catalog.save_title(redis, title(t))
    clock = FakeClock()
    cache = ModelCache(redis, settings, clock=clock)
    cfgs = []
    for t in ("t1", "t2", "t3"):
        cfg = cache.title(t)
        assert cfg is not None
        cache.policy(cfg, "default")
        cfgs.append(cfg)
    learner = Learner(redis, settings)
    learner.step(now=T0)
    learner.publish()

    sent = round_trips
    sent.clear()  # count from here: the setup above made its own round trips
    clock.t += 0.1  # within refresh_interval: no Redis at all
    assert cache.title("t1") is cfgs[0]
    assert sent == [] and cache.policy(cfgs[0], "default")[1] == 0

    clock.t += 0.2  # due: one pipelined check for every cached title, then one fetch of what changed
    cache.title("t1")
    assert len(sent) == 2
    assert [cache.policy(cfg, "default")[1] for cfg in cfgs] == [1, 1, 1]
    assert cache.swaps == 3

    sent.clear()
    clock.t += 0.3  # nothing new: the check alone
    cache.title("t2")
    assert len(sent) == 1 and cache.swaps == 3


def test_workers_share_the_model_but_not_the_random_stream(
    redis: redis_lib.Redis, settings: Settings
) -> None:
    catalog.save_title(redis, title(policy={"name": "uniform"}))
    learner = Learner(redis, settings)
    learner.step(now=T0)
    learner.publish()
    draws = []
    for _ in range(2):
        cache = ModelCache(redis, settings)
        cfg = cache.title("t1")
        assert cfg is not None
        policy, version = cache.policy(cfg, "default")
        assert version == 1  # both workers serve the published snapshot
        draws.append([policy.decide({}).arm for _ in range(60)])
    assert draws[0] != draws[1]  # equal with probability 3**-60


def test_catalog_changes_are_followed(redis: redis_lib.Redis, settings: Settings) -> None:
    catalog.save_title(redis, title())
    clock = FakeClock()
    cache = ModelCache(redis, settings, clock=clock)
    cfg = cache.title("t1")
    assert cfg is not None
    policy, _ = cache.policy(cfg, "default")

    catalog.save_title(redis, title(artworks=("a", "c", "d"), default_artwork="d"))
    assert cache.title("t1") is cfg  # not yet checked
    clock.t += 1
    new = cache.title("t1")
    assert new is not None and new.fallback_artwork == "d"
    same, _ = cache.policy(new, "default")
    assert same is policy and same.arms == ["a", "c", "d"]  # the live policy follows the artworks

    catalog.save_title(redis, title(artworks=("a", "c", "d"), policy={"name": "uniform"}))
    clock.t += 1
    newer = cache.title("t1")
    assert newer is not None
    fresh, version = cache.policy(newer, "default")
    assert fresh.name == "uniform" and version == 0  # a new spec starts afresh

    catalog.delete_title(redis, "t1")
    clock.t += 1
    assert cache.title("t1") is None


def test_snapshot_of_an_old_spec_is_not_served(redis: redis_lib.Redis, settings: Settings) -> None:
    catalog.save_title(redis, title())
    learner = Learner(redis, settings)
    learner.step(now=T0)
    learner.publish()  # a linucb snapshot
    catalog.save_title(redis, title(policy={"name": "uniform"}))  # the learner has not seen this yet
    cache = ModelCache(redis, settings)
    cfg = cache.title("t1")
    assert cfg is not None
    policy, version = cache.policy(cfg, "default")
    assert policy.name == "uniform" and version == 0


def test_catalog_store(redis: redis_lib.Redis) -> None:
    assert catalog.catalog_version(redis) == 0 and catalog.list_titles(redis) == []
    assert catalog.seed_catalog(redis, [title("t1"), title("t2")]) == 2
    assert catalog.catalog_version(redis) == 1
    changed = title("t1", artworks=("x",))
    assert catalog.seed_catalog(redis, [changed, title("t3")]) == 1  # existing titles are kept
    assert catalog.load_title(redis, "t1") == title("t1")
    assert catalog.save_title(redis, changed) == 3
    assert catalog.load_title(redis, "t1") == changed
    assert [t.title_id for t in catalog.list_titles(redis)] == ["t1", "t2", "t3"]
    assert catalog.delete_title(redis, "t2") and not catalog.delete_title(redis, "t2")
    assert catalog.load_title(redis, "t2") is None
    assert catalog.title_ids(redis) == ["t1", "t3"]
    assert catalog.seed_catalog(redis, []) == 0


def test_a_seed_makes_a_worker_reproducible(redis: redis_lib.Redis, settings: Settings) -> None:
    catalog.save_title(redis, title(policy={"name": "uniform"}))
    draws = []
    for _ in range(2):
        cache = ModelCache(redis, settings, seed=11)
        cfg = cache.title("t1")
        assert cfg is not None
        policy, _ = cache.policy(cfg, "default")
        draws.append([policy.decide({}).arm for _ in range(30)])
    assert draws[0] == draws[1]



def test_a_background_refresher_swaps_snapshots_in_without_requests(
    redis: redis_lib.Redis, settings: Settings
) -> None:
    catalog.save_title(redis, title())
    cache = ModelCache(redis, settings, clock=FakeClock())  # frozen: no request would find a check due
    cfg = cache.title("t1")
    assert cfg is not None and cache.policy(cfg, "default")[1] == 0
    learner = Learner(redis, settings)
    learner.step(now=T0)
    learner.publish()
    thread = cache.refresh_in_background()
    try:
        assert cache.refresh_in_background() is thread  # one refresher per cache
        deadline = time.monotonic() + 10
        while cache.policy(cfg, "default")[1] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cache.policy(cfg, "default")[1] == 1 and cache.swaps == 1
    finally:
        cache.stop_background_refresh()
    assert not thread.is_alive()


def test_requests_leave_the_checks_to_a_running_refresher(
    redis: redis_lib.Redis, redis_server: PrivateRedis, round_trips: list[int]
) -> None:
    slow = Settings.load({"redis_url": redis_server.url, "refresh_interval": 3600}, environ={})
    catalog.save_title(redis, title())
    clock = FakeClock()
    cache = ModelCache(redis, slow, clock=clock)
    assert cache.title("t1") is not None
    cache.refresh_in_background()  # its first check is an hour away
    try:
        clock.t += 7200  # a check is due, but the refresher owns the checks
        round_trips.clear()
        cache.title("t1")
        assert round_trips == []
    finally:
        cache.stop_background_refresh()
    cache.title("t1")  # no refresher any more: the request makes the due check
    assert len(round_trips) == 1
