"""Deferred activation and graded rewards in the Redis join (activate.lua, click.lua, expire.lua)."""

from __future__ import annotations

import threading
from typing import cast

import pytest
import redis as redis_lib

from service.catalog import RewardSpec
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import ImpressItem, RedisJoin
from service.join.rule import Activation, ClickOutcome
from service.store import keys
from service.store.records import StreamEntries, iter_decisions, parse_labelled
from tests.service.join.test_redis_join import T0, WINDOW, join_counts, labelled, record

A = Activation
C = ClickOutcome


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return Settings.load({"redis_url": redis_server.url, "attribution_window": WINDOW}, environ={})


@pytest.fixture()
def join(redis: redis_lib.Redis, settings: Settings) -> RedisJoin:
    return RedisJoin(redis, settings)


def totals(r: redis_lib.Redis, title_id: str = "t1") -> dict[str, str]:
    raw = cast(dict[bytes, bytes], r.hgetall(keys.totals(title_id)))
    return {k.decode(): v.decode() for k, v in raw.items()}


# ------------------------------------------------------------------------------------ deferred activation
def test_a_deferred_impression_is_logged_but_counts_nowhere(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec, defer=True)
    assert [d.event_id for d in iter_decisions(redis, "t1")] == [rec.event_id]  # the decision is logged
    assert next(iter_decisions(redis, "t1")).deferred
    assert totals(redis) == {}  # no impression counted
    assert join_counts(redis, "t1") == {"deferred": 1}
    ref = keys.parse_impression_id(rec.event_id)
    assert ref is not None
    assert not redis.exists(keys.minute_counters("t1", ref.minute))


def test_activation_counts_it_and_starts_its_window(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec, defer=True)
    assert join.activate([rec.event_id], now=T0 + 7) == {rec.event_id: A.ACTIVATED}
    assert totals(redis) == {keys.impressions_field("v", "a"): "1"}
    assert join_counts(redis, "t1") == {"deferred": 1, "activated": 1, "impressions": 1}
    assert redis.zscore(keys.pending("t1"), rec.event_id) == T0 + 7 + WINDOW
    # idempotent: a second activation changes nothing
    assert join.activate([rec.event_id], now=T0 + 8) == {rec.event_id: A.ALREADY_ACTIVE}
    assert totals(redis) == {keys.impressions_field("v", "a"): "1"}
    # a click after decided_at + window but inside the activated window is recorded
    assert join.click(rec.event_id, now=T0 + WINDOW + 3) is C.RECORDED
    assert join.expire_all("t1", now=T0 + 7 + WINDOW) == 0  # deadline not passed yet
    assert join.expire_all("t1", now=T0 + 7 + WINDOW + 0.001) == 1
    assert labelled(redis, "t1") == [(rec.event_id, 1.0, T0 + 7 + WINDOW)]


def test_late_activation_is_expired_and_never_shown(redis: redis_lib.Redis, join: RedisJoin) -> None:
    late, swept = record("t1", T0), record("t1", T0 + 1)
    join.impress(late, defer=True)
    join.impress(swept, defer=True)
    assert join.activate([late.event_id], now=T0 + WINDOW + 0.5) == {late.event_id: A.EXPIRED}
    assert join.expire_all("t1", now=T0 + 100) == 0  # the swept one emits no label either
    assert labelled(redis, "t1") == []
    assert join.activate([late.event_id, swept.event_id], now=T0 + 100) == {
        late.event_id: A.EXPIRED,
        swept.event_id: A.EXPIRED,
    }
    assert join_counts(redis, "t1") == {"deferred": 2, "never_shown": 2}
    assert redis.zcard(keys.pending("t1")) == 0
    assert totals(redis) == {}


def test_activation_answers_per_id_across_titles(redis: redis_lib.Redis, join: RedisJoin) -> None:
    d1, d2, shown = record("t1", T0), record("t2", T0), record("t1", T0)
    join.impress(d1, defer=True)
    join.impress(d2, defer=True)
    join.impress(shown)
    ids = [d1.event_id, "garbage", d2.event_id, shown.event_id, keys.new_impression_id("t1", T0), d1.event_id]
    assert join.activate(ids, now=T0 + 1) == {
        d1.event_id: A.ACTIVATED,
        "garbage": A.UNKNOWN,
        d2.event_id: A.ACTIVATED,
        shown.event_id: A.ALREADY_ACTIVE,
        ids[4]: A.UNKNOWN,
    }


def test_activations_of_a_page_are_one_round_trip(
    redis: redis_lib.Redis, join: RedisJoin, round_trips: list[int]
) -> None:
    recs = [record(f"t{i % 4}", T0) for i in range(20)]
    join.impress_many([ImpressItem(r, defer=True) for r in recs])
    round_trips.clear()
    out = join.activate([r.event_id for r in recs], now=T0 + 1)
    assert set(out.values()) == {A.ACTIVATED}
    assert len(round_trips) == 1


def test_64_concurrent_activations_of_one_id_activate_it_once(
    redis: redis_lib.Redis, settings: Settings
) -> None:
    rec = record("t1", T0)
    RedisJoin(redis, settings).impress(rec, defer=True)
    joins = [RedisJoin(redis_lib.Redis.from_url(settings.redis_url), settings) for _ in range(8)]
    barrier = threading.Barrier(64)
    results: list[Activation] = []
    lock = threading.Lock()

    def activate(i: int) -> None:
        barrier.wait()
        out = joins[i % 8].activate([rec.event_id], now=T0 + 1)[rec.event_id]
        with lock:
            results.append(out)

    threads = [threading.Thread(target=activate, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count(A.ACTIVATED) == 1
    assert results.count(A.ALREADY_ACTIVE) == 63
    assert totals(redis) == {keys.impressions_field("v", "a"): "1"}
    assert join_counts(redis, "t1")["impressions"] == 1


def test_a_click_on_a_deferred_impression_activates_it(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec, old = record("t1", T0), record("t1", T0)
    join.impress(rec, defer=True)
    join.impress(old, defer=True)
    assert join.click(rec.event_id, now=T0 + 4) is C.RECORDED
    assert join.activate([rec.event_id], now=T0 + 5) == {rec.event_id: A.ALREADY_ACTIVE}
    assert totals(redis) == {keys.impressions_field("v", "a"): "1", keys.clicks_field("v", "a"): "1"}
    # a click after the activation window of a never-activated one: late, and it was never shown
    assert join.click(old.event_id, now=T0 + WINDOW + 1) is C.LATE
    join.expire_all("t1", now=T0 + 100)
    assert labelled(redis, "t1") == [(rec.event_id, 1.0, T0 + 4 + WINDOW)]
    counts = join_counts(redis, "t1")
    assert (counts["never_shown"], counts["late"], counts["activated"], counts["clicked"]) == (1, 1, 1, 1)


# ------------------------------------------------------------------------------------ graded rewards
def reward_rule(aggregate: str, lo: float = 0.0, hi: float = 1.0) -> RewardSpec:
    return RewardSpec.model_validate({"aggregate": aggregate, "min": lo, "max": hi})


def label_of(redis: redis_lib.Redis, join: RedisJoin, impression_id: str) -> float:
    join.expire_all("t1", now=T0 + 1000)
    entries = cast(StreamEntries, redis.xrange(keys.labelled_stream("t1")))
    found = [parse_labelled("t1", f) for _, f in entries if f[b"id"].decode() == impression_id]
    assert len(found) == 1
    return found[0].reward


def test_first_keeps_the_first_reward_clipped(redis: redis_lib.Redis, join: RedisJoin) -> None:
    a, b = record("t1", T0), record("t1", T0)
    join.impress(a, reward=reward_rule("first", 0, 10))
    join.impress(b, reward=reward_rule("first", 0, 10))
    assert join.reward(a.event_id, 2.5, now=T0 + 1) is C.RECORDED
    assert join.reward(a.event_id, 7.0, "other", now=T0 + 2) is C.DUPLICATE
    assert join.click(a.event_id, now=T0 + 2) is C.DUPLICATE
    assert join.reward(b.event_id, 99.0, now=T0 + 1) is C.RECORDED
    assert label_of(redis, join, a.event_id) == 2.5
    assert label_of(redis, join, b.event_id) == 10.0  # clipped to max


def test_sum_adds_rewards_and_drops_repeated_event_ids(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec, reward=reward_rule("sum", 0, 100))
    assert join.reward(rec.event_id, 3.0, "e1", now=T0 + 1) is C.RECORDED
    assert join.reward(rec.event_id, 3.0, "e1", now=T0 + 2) is C.DUPLICATE  # a client retry
    assert join.reward(rec.event_id, 4.5, "e2", now=T0 + 3) is C.RECORDED
    assert join.reward(rec.event_id, 0.25, now=T0 + 4) is C.RECORDED  # no event id: always counted
    assert join.click(rec.event_id, now=T0 + 5) is C.RECORDED  # a click is value 1, event id 'click'
    assert join.click(rec.event_id, now=T0 + 6) is C.DUPLICATE
    assert join.reward(rec.event_id, 1.0, "e3", now=T0 + WINDOW + 1) is C.LATE
    assert join.reward(rec.event_id, 1.0, "e2", now=T0 + WINDOW + 2) is C.DUPLICATE
    assert label_of(redis, join, rec.event_id) == 3.0 + 4.5 + 0.25 + 1.0
    counts = join_counts(redis, "t1")
    assert (counts["clicked"], counts["duplicate"], counts["late"]) == (1, 3, 1)


def test_sum_and_max_are_clipped_to_the_bounds(redis: redis_lib.Redis, join: RedisJoin) -> None:
    s, m, neg = record("t1", T0), record("t1", T0), record("t1", T0)
    join.impress(s, reward=reward_rule("sum", 0, 5))
    join.impress(m, reward=reward_rule("max", 0, 5))
    join.impress(neg, reward=reward_rule("sum", -1, 5))
    for value, event in ((4.0, "a"), (3.0, "b"), (-2.0, "c")):
        join.reward(s.event_id, value, event, now=T0 + 1)
        join.reward(m.event_id, value, event, now=T0 + 1)
    join.reward(neg.event_id, -3.0, "x", now=T0 + 1)
    assert label_of(redis, join, s.event_id) == 5.0  # 4 + 3 - 2 = 5
    assert label_of(redis, join, m.event_id) == 4.0
    assert label_of(redis, join, neg.event_id) == -1.0


def test_an_unrewarded_impression_is_labelled_zero_clipped(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec, reward=reward_rule("max", 1, 5))
    assert label_of(redis, join, rec.event_id) == 1.0


def test_graded_reward_on_a_click_title(redis: redis_lib.Redis, join: RedisJoin) -> None:
    """A title without a reward config: first reward counts, clipped to [0, 1]."""
    a, b = record("t1", T0), record("t1", T0)
    join.impress(a)
    join.impress(b)
    assert join.reward(a.event_id, 0.25, now=T0 + 1) is C.RECORDED
    assert join.click(a.event_id, now=T0 + 2) is C.DUPLICATE
    assert join.reward(b.event_id, 3.0, now=T0 + 1) is C.RECORDED
    assert label_of(redis, join, a.event_id) == 0.25
    assert label_of(redis, join, b.event_id) == 1.0


def test_late_and_unknown_rewards(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec, reward=reward_rule("first", 0, 10))
    assert join.reward(rec.event_id, 1.0, now=T0 + WINDOW + 1) is C.LATE  # performs the expiry first
    assert labelled(redis, "t1") == [(rec.event_id, 0.0, T0 + WINDOW)]
    assert join.reward(rec.event_id, 1.0, now=T0 + WINDOW + 2) is C.LATE
    assert join.reward(keys.new_impression_id("t1", T0), 1.0) is C.UNKNOWN
    assert join.reward("not-an-id", 1.0) is C.UNKNOWN
    with pytest.raises(ValueError, match="finite"):
        join.reward(rec.event_id, float("nan"))


def test_a_reward_on_a_deferred_impression_activates_it(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec, defer=True, reward=reward_rule("sum", 0, 10))
    assert join.reward(rec.event_id, 2.0, "e", now=T0 + 3) is C.RECORDED
    assert join.activate([rec.event_id], now=T0 + 4) == {rec.event_id: A.ALREADY_ACTIVE}
    assert label_of(redis, join, rec.event_id) == 2.0


def test_mean_reward_counters(redis: redis_lib.Redis, join: RedisJoin) -> None:
    recs = [record("t1", T0) for _ in range(4)]
    for r in recs:
        join.impress(r, reward=reward_rule("sum", 0, 10))
    join.reward(recs[0].event_id, 3.0, "e", now=T0 + 1)
    join.reward(recs[1].event_id, 20.0, "e", now=T0 + 1)
    join.expire_all("t1", now=T0 + 1000)
    t = totals(redis)
    assert float(t[keys.reward_sum_field("v", "a")]) == 13.0  # 3 + 10 (clipped) + 0 + 0
    assert t[keys.labels_field("v", "a")] == "4"
