"""The join in Redis: every outcome of a click, the expiry sweep, and exactly-once under concurrency."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest
import redis as redis_lib

from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.join.rule import ClickOutcome
from service.store import keys
from service.store.clients import connect
from service.store.records import DecisionRecord, StreamEntries, parse_labelled

WINDOW = 10.0
T0 = 1_700_000_000.0


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return Settings.load({"redis_url": redis_server.url, "attribution_window": WINDOW}, environ={})


@pytest.fixture()
def join(redis: redis_lib.Redis, settings: Settings) -> RedisJoin:
    return RedisJoin(redis, settings)


def record(title_id: str, decided_at: float, artwork: str = "a", variant: str = "v") -> DecisionRecord:
    return DecisionRecord(
        event_id=keys.new_impression_id(title_id, decided_at),
        title_id=title_id,
        variant=variant,
        user_id="u1",
        context={"romance": 0.5},
        artworks=["a", "b"],
        probabilities=[0.6, 0.4],
        chosen=artwork,
        propensity=0.6 if artwork == "a" else 0.4,
        model_version=3,
        policy="linucb",
        decided_at=decided_at,
    )


def labelled(r: redis_lib.Redis, title_id: str) -> list[tuple[str, float, float]]:
    """(impression id, reward, labelled_at) of every labelled event, in stream order."""
    entries = cast(StreamEntries, r.xrange(keys.labelled_stream(title_id)))
    events = [parse_labelled(title_id, fields) for _, fields in entries]
    return [(e.impression_id, e.reward, e.labelled_at) for e in events]


def join_counts(r: redis_lib.Redis, title_id: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in r.hgetall(keys.join_counters(title_id)).items()}  # type: ignore[union-attr]


def test_first_click_in_window_is_recorded_once(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec)
    assert join.click(rec.event_id, now=T0 + 1) is ClickOutcome.RECORDED
    assert join.click(rec.event_id, now=T0 + 2) is ClickOutcome.DUPLICATE
    assert join.click(rec.event_id, now=T0 + WINDOW + 1) is ClickOutcome.DUPLICATE  # clicked: never "late"
    assert labelled(redis, "t1") == [(rec.event_id, 1.0, T0 + WINDOW)]  # labelled at the deadline
    assert join.expire("t1", now=T0 + 100) == 0
    assert redis.zcard(keys.pending("t1")) == 0


def test_labelled_event_carries_what_the_learner_needs(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0, artwork="b")
    join.impress(rec)
    join.click(rec.event_id, now=T0 + 3)
    assert redis.xlen(keys.labelled_stream("t1")) == 0  # labels wait for the deadline (service/join/rule.py)
    assert join.expire("t1", now=T0 + WINDOW + 1) == 1
    ((_, fields),) = cast(StreamEntries, redis.xrange(keys.labelled_stream("t1")))
    event = parse_labelled("t1", fields)
    assert (event.variant, event.artwork_id, event.propensity, event.model_version) == ("v", "b", 0.4, 3)
    assert event.context == {"romance": 0.5}
    assert (event.decided_at, event.labelled_at, event.reward) == (T0, T0 + WINDOW, 1.0)


def test_click_exactly_at_the_deadline_counts(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec)
    assert join.click(rec.event_id, now=T0 + WINDOW) is ClickOutcome.RECORDED


def test_click_after_deadline_expires_first_then_is_late(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec)
    assert join.click(rec.event_id, now=T0 + WINDOW + 0.001) is ClickOutcome.LATE
    assert labelled(redis, "t1") == [(rec.event_id, 0.0, T0 + WINDOW)]
    assert join.click(rec.event_id, now=T0 + WINDOW + 5) is ClickOutcome.LATE
    assert join.expire("t1", now=T0 + 100) == 0
    assert len(labelled(redis, "t1")) == 1
    counts = join_counts(redis, "t1")
    assert (counts["defaulted"], counts["late"], counts.get("clicked", 0)) == (1, 2, 0)


def test_expiry_labels_reward_zero_once_and_then_clicks_are_late(
    redis: redis_lib.Redis, join: RedisJoin
) -> None:
    recs = [record("t1", T0 + i) for i in range(5)]
    for rec in recs:
        join.impress(rec)
    join.click(recs[1].event_id, now=T0 + 2)
    # deadlines T0+10 .. T0+14; strictly before T0+12.5: impressions 0, 1 (clicked: reward 1) and 2
    assert join.expire("t1", now=T0 + 12.5) == 3
    assert join.expire("t1", now=T0 + 12.5) == 0
    assert join.click(recs[0].event_id, now=T0 + 5) is ClickOutcome.LATE  # defaulted: late whenever it comes
    assert join.expire("t1", now=T0 + 100, limit=1) == 1
    assert join.expire_all("t1", now=T0 + 100, limit=1) == 1
    rewards = {i: r for i, r, _ in labelled(redis, "t1")}
    assert rewards == {recs[0].event_id: 0.0, recs[1].event_id: 1.0, recs[2].event_id: 0.0,
                       recs[3].event_id: 0.0, recs[4].event_id: 0.0}  # fmt: skip
    assert redis.zcard(keys.pending("t1")) == 0


def test_sweep_says_whether_it_stopped_with_more_due(redis: redis_lib.Redis, join: RedisJoin) -> None:
    for i in range(5):
        join.impress(record("t1", T0 + i))
    assert join.sweep("t1", now=T0 + 100, limit=2, max_rounds=2) == (4, True)  # two full batches
    assert join.sweep("t1", now=T0 + 100, limit=2, max_rounds=2) == (1, False)  # the last one
    assert join.sweep("t1", now=T0 + 100, limit=2, max_rounds=2) == (0, False)


def test_deadline_equal_to_now_is_not_yet_expired(redis: redis_lib.Redis, join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec)
    assert join.expire("t1", now=T0 + WINDOW) == 0
    assert join.click(rec.event_id, now=T0 + WINDOW) is ClickOutcome.RECORDED


def test_unknown_ids(redis: redis_lib.Redis, join: RedisJoin) -> None:
    # malformed, or of a title without any impression: counted globally, never creating title keys
    assert join.click("not an id") is ClickOutcome.UNKNOWN
    assert join.click("nobody~123~0123456789abcdef") is ClickOutcome.UNKNOWN
    assert int(redis.get(keys.unknown_clicks())) == 2  # type: ignore[arg-type]
    assert not redis.exists(keys.join_counters("nobody"))
    # well formed, of a title that has impressions: counted for the title
    join.impress(record("t1", T0))
    assert join.click("t1~123~0123456789abcdef", now=T0) is ClickOutcome.UNKNOWN
    assert join_counts(redis, "t1")["unknown"] == 1
    assert int(redis.get(keys.unknown_clicks())) == 2  # type: ignore[arg-type]


def test_server_clock_is_used_without_explicit_times(redis: redis_lib.Redis, join: RedisJoin) -> None:
    fresh, old = record("t1", time.time()), record("t1", time.time() - 2 * WINDOW)
    join.impress(fresh)
    join.impress(old)
    assert join.expire("t1") == 1  # only the old one is past its deadline on the server's clock
    assert join.click(fresh.event_id) is ClickOutcome.RECORDED  # within the window on the server's clock
    assert [e[0] for e in labelled(redis, "t1")] == [old.event_id]


def test_impression_ids_cannot_be_reused(join: RedisJoin) -> None:
    rec = record("t1", T0)
    join.impress(rec)
    with pytest.raises(ValueError, match="already used"):
        join.impress(rec)


def test_concurrent_duplicate_clicks_record_exactly_one(
    redis: redis_lib.Redis, redis_server: PrivateRedis, settings: Settings
) -> None:
    rec = record("t1", time.time())
    RedisJoin(redis, settings).impress(rec)
    n = 100
    clients = [connect(redis_server.url) for _ in range(n)]
    joins = [RedisJoin(c, settings) for c in clients]
    for j in joins:  # connect and load scripts before the race
        j.r.ping()
    barrier = threading.Barrier(n)
    outcomes: list[ClickOutcome] = []
    lock = threading.Lock()

    def click(j: RedisJoin) -> None:
        barrier.wait()
        outcome = j.click(rec.event_id)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=click, args=(j,)) for j in joins]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    assert outcomes.count(ClickOutcome.RECORDED) == 1
    assert outcomes.count(ClickOutcome.DUPLICATE) == n - 1
    assert join_counts(redis, "t1")["clicked"] == 1
    assert RedisJoin(redis, settings).expire("t1", now=rec.decided_at + WINDOW + 1) == 1
    assert labelled(redis, "t1") == [(rec.event_id, 1.0, rec.decided_at + WINDOW)]
    counts = join_counts(redis, "t1")
    assert (counts["clicked"], counts["duplicate"], counts["labelled"]) == (1, n - 1, 1)


def test_concurrent_clicks_and_sweeps_label_each_impression_once(
    redis: redis_lib.Redis, redis_server: PrivateRedis, settings: Settings
) -> None:
    """Clicks racing the expiry sweep right at the deadline: whichever wins, one label per impression."""
    join = RedisJoin(redis, settings)
    recs = [record("t1", T0 + i * 0.01) for i in range(200)]
    for rec in recs:
        join.impress(rec)
    at = T0 + WINDOW + 3.0  # all past the deadline: clicks are late, sweeps expire them
    clients = [connect(redis_server.url) for _ in range(4)]

    def clicker(c: redis_lib.Redis) -> None:
        j = RedisJoin(c, settings)
        for rec in recs:
            j.click(rec.event_id, now=at)

    def sweeper(c: redis_lib.Redis) -> None:
        j = RedisJoin(c, settings)
        for _ in range(50):
            j.expire("t1", now=at, limit=7)

    threads = [
        threading.Thread(target=f, args=(c,))
        for f, c in zip([clicker, clicker, sweeper, sweeper], clients, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    join.expire_all("t1", now=at)
    for c in clients:
        c.close()
    ids = [i for i, _, _ in labelled(redis, "t1")]
    assert sorted(ids) == sorted(r.event_id for r in recs)
    assert all(reward == 0.0 for _, reward, _ in labelled(redis, "t1"))


def test_a_pending_impression_whose_entry_expired_is_counted_lost_not_labelled(
    redis: redis_lib.Redis, join: RedisJoin, settings: Settings
) -> None:
    """Retention shorter than the sweep's absence: the impression's hash expires (TTL window + retention)
    while its id is still pending. The sweep must count it `lost` and emit no label it cannot build."""
    kept, gone = record("t1", T0), record("t1", T0 + 1)
    join.impress(kept)
    join.impress(gone)
    ref = keys.parse_impression_id(gone.event_id)
    assert ref is not None
    ttl = redis.ttl(keys.impression(ref))
    assert abs(ttl - (settings.attribution_window + settings.retention_seconds)) <= 1  # type: ignore[operator]
    redis.delete(keys.impression(ref))  # what the TTL does when no sweep runs for that long
    assert join.expire_all("t1", now=T0 + WINDOW + 10) == 1
    assert [e[0] for e in labelled(redis, "t1")] == [kept.event_id]
    assert join_counts(redis, "t1")["lost"] == 1
    assert redis.zcard(keys.pending("t1")) == 0
    # and the title's health says so: stats and dashboard show the warning, /metrics the outcome
    from service.reporting import stats
    from service.store import counters

    raw = counters.raw_title_stats(redis, "t1", now=T0 + WINDOW + 10)
    health = stats._health(raw, impressions=2)
    assert health["join"]["lost"] == 1 and not health["ok"]
    assert any("never learned" in w for w in health["warnings"])


# Every test here runs on one Redis and on a 3-master Redis Cluster (tests/conftest.py).
@pytest.fixture()
def redis_server(store_server: Any) -> Any:
    return store_server


@pytest.fixture()
def redis(store: Any) -> Any:
    return store
