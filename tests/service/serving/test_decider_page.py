"""Deciding a page: the same decisions as the single-title path, one round trip, per-title errors."""

from __future__ import annotations

import pytest
import redis as redis_lib

from service.config import Settings
from service.errors import InvalidRequest, StoreUnavailable, UnknownTitle
from service.learning.learner import Learner
from service.serving.decider import Decider, ImpressionResult
from service.serving.model_cache import ModelCache
from service.store import catalog, keys
from service.store.clients import make_redis
from service.store.records import iter_decisions
from tests.service.serving.test_decider import T0, make_settings, title

TITLES = ["t0", "t1", "t2", "t3", "t4"]


@pytest.fixture()
def settings(redis_server: object) -> Settings:
    return make_settings(redis_server.url)  # type: ignore[attr-defined]


def seed_titles(r: redis_lib.Redis) -> None:
    for i, t in enumerate(TITLES):
        extra: dict[str, object] = {}
        if i == 1:
            extra["experiment"] = {
                "variants": [
                    {"name": "a", "weight": 1, "policy": {"name": "epsilon_greedy"}},
                    {"name": "b", "weight": 1, "policy": {"name": "linucb"}},
                ]
            }
        if i == 2:
            extra["features"] = ["horror"]
        catalog.save_title(r, title(t, **extra))


def seeded_decider(settings: Settings, seed: int = 5) -> Decider:
    r = make_redis(settings, for_api=True)
    return Decider(r, ModelCache(r, settings, seed=seed), settings)


def test_a_page_decides_exactly_as_single_impressions(redis: redis_lib.Redis, settings: Settings) -> None:
    seed_titles(redis)
    # give the titles a published snapshot first, so both paths serve learned models (version > 0)
    warm = seeded_decider(settings, seed=1)
    for i in range(40):
        for t in TITLES:
            res = warm.impression(t, f"w{i}", {"romance": 1.0} if t != "t2" else {"horror": 1.0}, now=T0)
            if i % 3 == 0 and res.impression_id:
                warm.join.click(res.impression_id, now=T0 + 1)
    learner = Learner(redis, settings)
    learner.step(now=T0 + settings.attribution_window + 1)
    learner.publish()

    context = {"romance": 0.7, "comedy": 0.2, "horror": 0.9}  # t2 reads horror only; the others ignore it
    paged, single = seeded_decider(settings), seeded_decider(settings)
    for i in range(25):
        user = f"viewer-{i}"
        page = paged.page(user, context, TITLES, now=T0 + 100 + i)
        one = []
        for t in TITLES:
            schema = {"horror"} if t == "t2" else {"romance", "comedy"}
            own = {k: v for k, v in context.items() if k in schema}
            one.append(single.impression(t, user, own, now=T0 + 100 + i))
        for p, s in zip(page, one, strict=True):
            assert isinstance(p, ImpressionResult)
            assert (p.artwork_id, p.propensity, p.variant, p.policy, p.model_version) == (
                s.artwork_id,
                s.propensity,
                s.variant,
                s.policy,
                s.model_version,
            )
            assert p.model_version > 0 and not p.fallback
    # the page logs each title's decision with the part of the context the title read
    last = paged.page("viewer-x", context, ["t2"], now=T0 + 200)[0]
    assert isinstance(last, ImpressionResult) and last.impression_id is not None
    logged = [d for d in iter_decisions(redis, "t2") if d.event_id == last.impression_id]
    assert len(logged) == 1 and dict(logged[0].context) == {"horror": 0.9}


def test_a_page_is_one_round_trip(redis: redis_lib.Redis, settings: Settings, round_trips: list[int]) -> None:
    many = [f"p{i}" for i in range(20)]
    for t in many:
        catalog.save_title(redis, title(t))
    decider = seeded_decider(settings)
    decider.page("u", {}, many, now=T0)  # warm: the worker loads the titles and models once
    redis.config_resetstat()
    round_trips.clear()
    for i in range(3):
        results = decider.page(f"u{i}", {"comedy": 1.0}, many, now=T0 + i)
        assert all(isinstance(r, ImpressionResult) and not r.fallback for r in results)
    assert len(round_trips) == 3
    assert redis.info("commandstats")["cmdstat_evalsha"]["calls"] == 60
    assert redis.zcard(keys.pending("p0")) == 4


def test_per_title_errors_and_whole_page_errors(redis: redis_lib.Redis, settings: Settings) -> None:
    seed_titles(redis)
    decider = seeded_decider(settings)
    out = decider.page("u", {"romance": 1.0}, ["t0", "nope", "t3"], now=T0)
    assert isinstance(out[0], ImpressionResult) and isinstance(out[2], ImpressionResult)
    assert isinstance(out[1], UnknownTitle) and "nope" in out[1].message
    assert redis.zcard(keys.pending("t0")) == 1 and redis.zcard(keys.pending("t3")) == 1
    # a feature a title knows, with a value its policy refuses: the whole page, nothing logged
    with pytest.raises(InvalidRequest, match="t0"):
        decider.page("u", {"romance": 1e12}, ["t0", "t3"], now=T0)
    assert redis.zcard(keys.pending("t0")) == 1


def test_deferred_page_is_logged_but_not_counted(redis: redis_lib.Redis, settings: Settings) -> None:
    seed_titles(redis)
    decider = seeded_decider(settings)
    out = decider.page("u", {}, TITLES, defer=True, now=T0)
    ids = [r.impression_id for r in out if isinstance(r, ImpressionResult)]
    assert len(ids) == len(TITLES) and all(ids)
    for t in TITLES:
        assert redis.hgetall(keys.totals(t)) == {}
        assert [d.deferred for d in iter_decisions(redis, t)] == [True]


def test_redis_down_pages_fall_back_per_title(settings: Settings, redis: redis_lib.Redis) -> None:
    seed_titles(redis)
    decider = seeded_decider(settings)
    decider.page("u", {}, ["t0", "t3"], now=T0)  # the worker knows t0 and t3
    decider.breaker.failed()  # as after a Redis failure: the breaker is open
    out = decider.page("u", {}, ["t0", "t4", "t3"], now=T0)
    assert isinstance(out[0], ImpressionResult) and out[0].fallback and out[0].impression_id is None
    assert out[0].artwork_id == "b"  # the default artwork
    assert isinstance(out[1], StoreUnavailable)  # never seen by this worker
    assert isinstance(out[2], ImpressionResult) and out[2].fallback
