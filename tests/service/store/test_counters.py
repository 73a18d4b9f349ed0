"""Counters as the dashboard reads them, learner health, and memory that stays bounded."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis as redis_lib

from service.catalog import parse_title
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.learning.learner import Learner
from service.store import catalog, counters, keys
from service.store.records import DecisionRecord

T0 = 1_700_000_000.0  # minute 28_333_333 starts at T0 - 20
M0 = int(T0 // 60)


def record(
    decided_at: float, artwork: str, variant: str = "default", title_id: str = "t1", user: str = "u"
) -> DecisionRecord:
    return DecisionRecord(
        event_id=keys.new_impression_id(title_id, decided_at),
        title_id=title_id,
        variant=variant,
        user_id=user,
        context={},
        artworks=["a", "b"],
        probabilities=[0.5, 0.5],
        chosen=artwork,
        propensity=0.5,
        model_version=0,
        policy="uniform",
        decided_at=decided_at,
    )


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return Settings.load({"redis_url": redis_server.url, "attribution_window": 300.0}, environ={})


def test_raw_title_stats_shape_and_attribution(redis: redis_lib.Redis, settings: Settings) -> None:
    catalog.save_title(
        redis,
        parse_title(
            "t1", {"features": [], "artworks": [{"id": "a"}, {"id": "b"}], "policy": {"name": "uniform"}}
        ),
    )
    join = RedisJoin(redis, settings)
    first, second, third = record(T0, "a"), record(T0 + 120, "b", user="v"), record(T0 + 121, "a", "explore")
    for rec in (first, second, third, record(T0 + 122, "b", user="v")):  # the last one: a returning viewer
        join.impress(rec)
    join.click(first.event_id, now=T0 + 150)  # recorded, counted in the decision minute M0
    join.click(first.event_id, now=T0 + 151)  # duplicate
    join.click("t1~1~0123456789abcdef", now=T0 + 151)  # unknown
    join.expire("t1", now=T0 + 421)  # second: defaulted
    join.click(second.event_id, now=T0 + 500)  # late

    raw = counters.raw_title_stats(redis, "t1", now=T0 + 180, minutes=10)
    assert raw["title_id"] == "t1"
    assert raw["variants"] == {
        "default": {
            "impressions": 3,
            "clicks": 1,
            "users": 2,  # distinct viewers: u and v (v twice)
            "artworks": {"a": {"impressions": 1, "clicks": 1}, "b": {"impressions": 2, "clicks": 0}},
        },
        "explore": {
            "impressions": 1, "clicks": 0, "users": 1, "artworks": {"a": {"impressions": 1, "clicks": 0}}
        },
    }
    assert raw["series"] == [
        {"minute": M0, "variant": "default", "artwork": "a", "impressions": 1, "clicks": 1},
        {"minute": M0 + 2, "variant": "default", "artwork": "b", "impressions": 2, "clicks": 0},
        {"minute": M0 + 2, "variant": "explore", "artwork": "a", "impressions": 1, "clicks": 0},
    ]
    assert raw["join"] == {
        "pending": 2,
        "clicked": 1,
        "defaulted": 1,
        "late": 1,
        "duplicate": 1,
        "unknown": 1,
        "lost": 0,
        "never_shown": 0,
    }
    assert raw["learner"] == {"lag": 2, "snapshot_age_s": None, "versions": {}, "throttled": 0}
    # the series covers the `minutes` minutes up to `now`
    assert counters.raw_title_stats(redis, "t1", now=T0 + 60, minutes=1)["series"] == []
    assert len(counters.raw_title_stats(redis, "t1", now=T0 + 60, minutes=2)["series"]) == 1

    learner = Learner(redis, settings)
    learner.step(now=T0 + 180)
    learner.publish()
    raw = counters.raw_title_stats(redis, "t1", now=time.time())
    assert raw["learner"]["lag"] == 0 and raw["learner"]["versions"] == {"default": 1}
    assert 0 <= raw["learner"]["snapshot_age_s"] < 60
    health = counters.learner_health(redis)
    assert health["t1"]["lag"] == 0 and health["t1"]["versions"] == {"default": 1}
    join.impress(record(T0 + 200, "a"))
    join.expire("t1", now=T0 + 1000)
    assert counters.learner_health(redis)["t1"]["lag"] == 3


@pytest.mark.slow
def test_memory_stays_bounded(redis: redis_lib.Redis, redis_server: PrivateRedis) -> None:
    """Tiny retention: streams stay near retention_events, finished impressions and the pending set go."""
    settings = Settings.load(
        {
            "redis_url": redis_server.url,
            "attribution_window": 0.2,
            "retention_seconds": 2.0,
            "retention_events": 1000,
        },
        environ={},
    )
    join = RedisJoin(redis, settings)
    n = 3000
    for i in range(n):
        rec = record(time.time(), "ab"[i % 2])
        join.impress(rec)
        if i % 3 == 0:
            join.click(rec.event_id)
        if i % 200 == 199:  # sweep as the learner does, so a slow (loaded) machine labels before expiry
            join.expire_all("t1")
    time.sleep(0.3)
    join.expire_all("t1")
    # approximate trimming removes whole stream nodes (100 entries by default)
    assert 1000 <= redis.xlen(keys.decisions_stream("t1")) < 1200
    assert 1000 <= redis.xlen(keys.labelled_stream("t1")) < 1200
    assert redis.zcard(keys.pending("t1")) == 0
    persistent = {
        keys.decisions_stream("t1"),
        keys.labelled_stream("t1"),
        keys.clicks_stream("t1"),  # accepted clicks, for early updates: trimmed like the other streams
        keys.join_counters("t1"),
        keys.totals("t1"),
        keys.variant_users("t1", "default"),  # a HyperLogLog: at most 12 KB however many viewers
    }
    all_keys = {k.decode() for k in redis.scan_iter(count=1000)}
    assert {k for k in all_keys if redis.ttl(k) == -1} == persistent  # everything else expires

    time.sleep(3.2)  # impression TTL: ceil(window + retention) = 3 s
    left = {k.decode() for k in redis.scan_iter(count=1000)}
    minute_keys = left - persistent
    assert len(minute_keys) <= 2  # per-minute counters only (they live retention + window + 2 min)
    assert all(redis.ttl(k) > 0 for k in minute_keys)


# Every test here runs on one Redis and on a 3-master Redis Cluster (tests/conftest.py).
@pytest.fixture()
def redis_server(store_server: Any) -> Any:
    return store_server


@pytest.fixture()
def redis(store: Any) -> Any:
    return store
