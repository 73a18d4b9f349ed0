"""Pages on a real Redis Cluster (3 masters + 3 replicas, tests/conftest.py): a page of 20 titles spread
over the shards is answered and logged in one batch per master node, its deferred rows are activated
across shards, clicks and graded rewards are joined, and the learner labels exactly what was shown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis.cluster import RedisCluster

from service.app import create_app
from service.config import Settings
from service.devstack.redis_cluster import PrivateCluster
from service.learning.learner import Learner
from service.store import keys
from service.store.clients import make_redis
from tests.service.web.test_api_pages import KEY, ROW, WINDOW, client_put, page, post, title


@pytest.fixture()
def cluster_app(redis_cluster: PrivateCluster) -> Iterator[Flask]:
    settings = {"redis_url": redis_cluster.url, "api_key": KEY, "attribution_window": WINDOW,
                "refresh_interval": 0.01, "redis_timeout": 2.0}  # fmt: skip
    r = make_redis(Settings.load(settings, environ={}), for_api=False)
    assert isinstance(r, RedisCluster)  # found out from the URL of one node
    r.flushall()
    app = create_app(settings)
    yield app
    app.extensions["artbandit"].close()
    r.close()


def test_a_page_on_a_cluster_is_one_batch_per_master_and_joins_what_was_shown(cluster_app: Flask) -> None:
    client: FlaskClient = cluster_app.test_client()
    for t in ROW[:-1]:
        assert client_put(client, t, title()) == 200
    assert client_put(client, ROW[-1], title({"aggregate": "sum", "min": 0, "max": 10})) == 200
    ext: Any = cluster_app.extensions["artbandit"]
    r = ext.admin_redis
    slots = {r.keyslot(keys.decisions_stream(t)) for t in ROW}
    masters = {r.get_node_from_key(keys.decisions_stream(t)).name for t in ROW}
    assert len(masters) == 3 and len(slots) > 3  # the page really spans every shard

    page(client, ROW)  # warm: titles and models loaded once
    wire = ext.join._wire
    before = wire.batches
    entries = page(client, ROW, defer=True, user="u2")
    assert wire.batches - before == len(masters)  # one batch per master node, sent in parallel
    assert all(not e["fallback"] and e["impression_id"] for e in entries)
    ids = [e["impression_id"] for e in entries]
    shown = ids[::2]  # every other row scrolled into view, on every shard
    status, body = post(client, "/activate", {"impression_ids": shown})
    assert status == 200 and set(body["results"].values()) == {"activated"}
    assert post(client, "/click", {"impression_id": shown[0]}) == (200, {"status": "recorded"})
    assert post(client, "/reward", {"impression_id": ids[-1], "value": 3.5, "event_id": "p1"})[0] == 200

    learner = Learner(r, ext.settings)
    time.sleep(WINDOW + 0.2)
    for _ in range(20):
        if not learner.step():
            break
    labelled = {t: r.xlen(keys.labelled_stream(t)) for t in ROW}
    # the warm page (20, shown) plus the activated rows and the row the reward activated
    want = {t: 1 + (1 if ROW.index(t) % 2 == 0 or t == ROW[-1] else 0) for t in ROW}
    assert labelled == want
    never = sum(int(r.hget(keys.join_counters(t), "never_shown") or 0) for t in ROW)
    assert never == len(ids) - len(shown) - 1
