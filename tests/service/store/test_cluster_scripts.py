"""The request path's script calls on a real Redis Cluster (3 masters + 3 replicas) and `run_many`, the
batch seam for a page of titles: each call reaches the master of its slot, a batch costs one round trip
per node, a MOVED reply is followed (and the slot map patched), and an error reply fails only its call.
Also on one Redis: `run_many` is one round trip, and `RedisJoin.impress_many` reports per record."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis as redis_lib
from redis.cluster import RedisCluster

from service.config import Settings
from service.devstack.redis_cluster import PrivateCluster
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.store import catalog, keys
from service.store.clients import make_redis
from service.store.cluster_scripts import ClusterScriptRunner
from service.store.records import DecisionRecord
from service.store.scripts import ScriptRunner

# counts every run in KEYS[1]; replies ARGV[1], or an error reply when ARGV[1] is 'bad'
ECHO = """
redis.call('INCR', KEYS[1])
if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end
return ARGV[1]
"""


@pytest.fixture()
def cluster(redis_cluster: PrivateCluster) -> Any:
    client = RedisCluster.from_url(redis_cluster.url)
    client.flushall()
    yield client
    client.close()


def titles_on_every_master(r: RedisCluster, n: int = 9) -> list[str]:
    titles = [f"page-{i}" for i in range(n)]
    owners = {r.nodes_manager.get_node_from_slot(r.keyslot(keys.join_counters(t))).name for t in titles}
    assert len(owners) == 3, owners  # the fixed ids above spread over the three masters
    return titles


def test_run_many_reaches_each_master_once_and_each_call_its_own_reply(cluster: RedisCluster) -> None:
    script = cluster.register_script(ECHO)
    runner = ClusterScriptRunner(cluster)
    titles = titles_on_every_master(cluster)
    calls = [(script, [keys.join_counters(t)], [t if i != 4 else "bad"]) for i, t in enumerate(titles)]
    runner.run_many(calls)  # connect and load the script on every master
    batches = runner.batches
    results = runner.run_many(calls)
    assert runner.batches == batches + 3  # one batch per master
    for i, (t, result) in enumerate(zip(titles, results, strict=True)):
        if i == 4:
            assert isinstance(result, redis_lib.ResponseError) and "bad argument" in str(result)
        else:
            assert result == t.encode()
    for t in titles:
        assert cluster.get(keys.join_counters(t)) == b"2"  # each call ran once per run_many


def test_many_threads_on_a_cluster_each_get_their_own_reply(cluster: RedisCluster) -> None:
    script = cluster.register_script(ECHO)
    runner = ClusterScriptRunner(cluster)
    titles = titles_on_every_master(cluster)
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(150):
            t = titles[(k + i) % len(titles)]
            arg = f"{k}:{i}"
            reply = runner.run(script, [keys.join_counters(t)], [arg])
            if reply != arg.encode():
                errors.append(f"{arg} got {reply!r}")

    pool = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    assert sum(int(cluster.get(keys.join_counters(t)) or 0) for t in titles) == 6 * 150


def test_a_moved_reply_is_followed_and_the_slot_map_patched(cluster: RedisCluster) -> None:
    script = cluster.register_script(ECHO)
    runner = ClusterScriptRunner(cluster)
    key = keys.join_counters("moved-title")
    slot = cluster.keyslot(key)
    manager = cluster.nodes_manager
    owner = manager.get_node_from_slot(slot)
    wrong = next(n for n in cluster.get_primaries() if n.name != owner.name)
    runner.run(script, [key], ["warm"])  # the script exists on the owner; load it on the wrong one too
    runner.run_many([(script, [keys.join_counters(t)], ["x"]) for t in titles_on_every_master(cluster)])
    with manager._lock:  # the client believes the slot is elsewhere, as after a failover or a reshard
        manager.slots_cache[slot] = [wrong]
    assert runner.run(script, [key], ["after"]) == b"after"  # MOVED by `wrong`, resent to the owner
    assert manager.get_node_from_slot(slot).name == owner.name
    assert cluster.get(key) == b"2"  # ran once more: the MOVED answer ran nothing


def test_run_many_on_one_redis_is_one_round_trip(redis: redis_lib.Redis) -> None:
    script = redis.register_script(ECHO)
    runner = ScriptRunner(redis)
    runner.run(script, ["warm"], ["x"])
    results = runner.run_many([(script, [f"k{i}"], [str(i) if i != 2 else "bad"]) for i in range(5)])
    assert runner.batches == 2
    assert results[0] == b"0" and results[4] == b"4" and isinstance(results[2], redis_lib.ResponseError)


@pytest.mark.parametrize("kind", ["node", "cluster"])
def test_impress_many_logs_a_page_and_reports_per_record(
    kind: str, single_redis: PrivateRedis, redis_cluster: PrivateCluster
) -> None:
    url = single_redis.url if kind == "node" else redis_cluster.url
    settings = Settings.load({"redis_url": url, "attribution_window": 60.0}, environ={})
    r = make_redis(settings, for_api=True)
    r.flushall()
    join = RedisJoin(r, settings)
    now = 1_700_000_000.0
    titles = [f"page-{i}" for i in range(9)]
    recs = [
        DecisionRecord(
            event_id=keys.new_impression_id(t, now), title_id=t, variant="v", user_id="u", context={},
            artworks=["a", "b"], probabilities=[0.5, 0.5], chosen="a", propensity=0.5, model_version=0,
            policy="uniform", decided_at=now,
        )  # fmt: skip
        for t in titles
    ]
    assert join.impress_many([(rec, None, None) for rec in recs]) == [None] * 9
    # ids already used: refused, per record
    again = join.impress_many([(recs[0], None, None), (recs[1], None, None)])
    assert all(isinstance(e, ValueError) and "already used" in str(e) for e in again)
    for t in titles:
        assert r.xlen(keys.decisions_stream(t)) == 1
    join.close()
    r.close()


def test_legacy_catalog_keys_are_renamed_once(redis: redis_lib.Redis) -> None:
    old_catalog, old_version = keys.legacy_catalog_keys()
    redis.hset(old_catalog, "t1", "{}")
    redis.set(old_version, 7)
    assert catalog.migrate_legacy(redis) is True
    assert redis.hget(keys.catalog(), "t1") == b"{}" and catalog.catalog_version(redis) == 7
    assert redis.exists(old_catalog, old_version) == 0
    assert catalog.migrate_legacy(redis) is False
