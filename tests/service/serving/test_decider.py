"""Deciding and logging one impression: the record, the join entry, one round trip, degraded mode."""

from __future__ import annotations

import json
import math
import time
from typing import cast

import pytest
import redis as redis_lib

from service.catalog import TitleConfig, parse_title
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.errors import InvalidRequest, StoreUnavailable, UnknownTitle
from service.join.redis_join import RedisJoin
from service.join.rule import ClickOutcome
from service.serving.decider import Decider
from service.serving.experiments import assign_variant
from service.serving.model_cache import ModelCache
from service.store import catalog, keys
from service.store.clients import make_redis
from service.store.records import StreamEntries, iter_decisions

T0 = 1_700_000_000.0


def title(title_id: str = "t1", **extra: object) -> TitleConfig:
    body = {
        "features": ["romance", "comedy"],
        "artworks": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        "default_artwork": "b",
        **extra,
    }
    return parse_title(title_id, body)


def make_settings(url: str, **overrides: object) -> Settings:
    return Settings.load({"redis_url": url, "refresh_interval": 60.0, **overrides}, environ={})


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return make_settings(redis_server.url)


@pytest.fixture()
def decider(redis: redis_lib.Redis, settings: Settings) -> Decider:
    catalog.save_title(redis, title())
    r = make_redis(settings, for_api=True)
    return Decider(r, ModelCache(r, settings), settings)


def test_impression_logs_the_full_decision_record(redis: redis_lib.Redis, decider: Decider) -> None:
    res = decider.impression("t1", "viewer-7", {"romance": 0.8}, now=T0)
    assert not res.fallback and res.impression_id is not None
    assert (res.variant, res.policy, res.model_version) == ("default", "linucb", 0)
    ((_, fields),) = cast(StreamEntries, redis.xrange(keys.decisions_stream("t1")))
    rec = json.loads(fields[b"json"])
    assert rec["EventId"] == res.impression_id
    assert rec["Timestamp"] == "2023-11-14T22:13:20.000Z" and rec["decided_at"] == T0
    assert (rec["title"], rec["variant"], rec["user"], rec["policy"]) == (
        "t1",
        "default",
        "viewer-7",
        "linucb",
    )
    assert rec["context"] == {"romance": 0.8}
    assert sorted(rec["artworks"]) == ["a", "b", "c"]
    assert math.isclose(sum(rec["probabilities"]), 1.0) and min(rec["probabilities"]) > 0
    assert rec["chosen"] == res.artwork_id
    assert rec["propensity"] == res.propensity == rec["probabilities"][rec["artworks"].index(res.artwork_id)]
    assert rec["model_version"] == 0
    assert [r.event_id for r in iter_decisions(redis, "t1")] == [res.impression_id]


def test_impression_opens_its_join_entry(
    redis: redis_lib.Redis, decider: Decider, settings: Settings
) -> None:
    res = decider.impression("t1", "u", {}, now=T0)
    assert res.impression_id is not None
    ref = keys.parse_impression_id(res.impression_id)
    assert ref is not None and ref.title_id == "t1" and ref.minute == int(T0 // 60)
    assert redis.zscore(keys.pending("t1"), res.impression_id) == T0 + settings.attribution_window
    ttl = redis.ttl(keys.impression(ref))
    assert 0 < ttl <= settings.attribution_window + settings.retention_seconds
    assert redis.hget(keys.totals("t1"), keys.impressions_field("default", res.artwork_id)) == b"1"
    assert redis.hget(
        keys.minute_counters("t1", ref.minute), keys.impressions_field("default", res.artwork_id)
    )
    assert redis.ttl(keys.minute_counters("t1", ref.minute)) > 0
    assert RedisJoin(redis, settings).click(res.impression_id, now=T0 + 1) is ClickOutcome.RECORDED


def test_impression_is_one_round_trip(
    redis: redis_lib.Redis, decider: Decider, round_trips: list[int]
) -> None:
    decider.impression("t1", "u", {}, now=T0)  # warm: the worker loads the title and the model once
    sent = round_trips
    redis.config_resetstat()
    sent.clear()
    for i in range(5):
        decider.impression("t1", f"u{i}", {"comedy": 1.0}, now=T0 + i)
    assert len(sent) == 5
    assert redis.info("commandstats")["cmdstat_evalsha"]["calls"] == 5


def test_unknown_title_and_bad_context(decider: Decider) -> None:
    with pytest.raises(UnknownTitle):
        decider.impression("nope", "u", {})
    with pytest.raises(InvalidRequest, match="unknown feature 'drama'"):
        decider.impression("t1", "u", {"drama": 1.0})
    with pytest.raises(InvalidRequest, match="'romance' must be finite"):
        decider.impression("t1", "u", {"romance": float("nan")})


def test_variants_are_sticky_and_follow_the_experiment(redis: redis_lib.Redis, settings: Settings) -> None:
    cfg = title(
        "t2",
        experiment={
            "salt": "s1",
            "variants": [
                {"name": "ctl", "weight": 1, "policy": {"name": "uniform"}},
                {"name": "ucb", "weight": 3, "policy": {"name": "linucb"}},
            ],
        },
    )
    catalog.save_title(redis, cfg)
    r = make_redis(settings, for_api=True)
    decider = Decider(r, ModelCache(r, settings), settings)
    for i in range(40):
        user = f"user-{i}"
        first = decider.impression("t2", user, {})
        expected = assign_variant("s1", user, [("ctl", 1.0), ("ucb", 3.0)])
        assert first.variant == expected == decider.impression("t2", user, {}).variant
        assert first.policy == {"ctl": "uniform", "ucb": "linucb"}[expected]


def test_api_client_has_short_timeouts_and_no_retries(settings: Settings) -> None:
    r = make_redis(settings, for_api=True)
    kwargs = r.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == settings.redis_timeout
    assert kwargs["retry"].get_retries() == 0
    assert make_redis(settings, for_api=False).connection_pool.connection_kwargs["socket_timeout"] > 1


def test_redis_down_serves_the_default_artwork_and_recovers() -> None:
    server = PrivateRedis(appendonly=True).start()
    try:
        settings = make_settings(server.url, refresh_interval=0.05)
        admin = make_redis(settings, for_api=False)
        catalog.save_title(admin, title())
        admin.close()
        r = make_redis(settings, for_api=True)
        decider = Decider(r, ModelCache(r, settings), settings)
        clicks = RedisJoin(r, settings)
        assert not decider.impression("t1", "u", {}).fallback

        server.stop(cleanup=False)
        down = [decider.impression("t1", f"u{i}", {"romance": 1.0}) for i in range(20)]
        assert all(d.fallback and d.artwork_id == "b" and d.impression_id is None for d in down)
        assert decider.fallbacks == 20
        with pytest.raises(InvalidRequest):  # the request is still validated
            decider.impression("t1", "u", {"drama": 1.0})
        with pytest.raises(StoreUnavailable):  # a title this worker never saw cannot be answered
            decider.impression("other", "u", {})
        with pytest.raises(StoreUnavailable) as err:
            clicks.click("t1~1~0123456789abcdef")
        assert err.value.retry_after >= 1

        server.start()  # same port
        deadline = time.monotonic() + 10
        while decider.impression("t1", "u", {}).fallback:  # the breaker closes by itself
            assert time.monotonic() < deadline, "no recovery after the restart"
            time.sleep(0.05)
        res = decider.impression("t1", "u", {})
        assert res.impression_id is not None and not res.fallback
        while True:
            try:
                assert clicks.click(res.impression_id) is ClickOutcome.RECORDED
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "clicks did not recover"
                time.sleep(0.05)
        r.close()
    finally:
        server.stop()
