"""Pages, deferred activation and graded rewards through HTTP (Flask test client through the hot path,
real Redis): the answers, one round trip per page, and what counts where (stats, learner, export)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.devstack.redis_server import PrivateRedis
from service.learning.learner import Learner
from service.reporting.offpolicy import logged_events
from simulator.export import title_records

KEY = "pages-key"
ADMIN = {"Authorization": f"Bearer {KEY}"}
WINDOW = 0.5  # seconds: short, so tests can let windows pass
ROW = [f"title-{i}" for i in range(20)]


def title(reward: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "features": ["romance", "horror"],
        "artworks": [
            {"id": "kiss", "features": {"romance": 1.0}},
            {"id": "scream", "features": {"horror": 1.0}},
        ],
        "policy": {"name": "linucb"},
    }
    if reward is not None:
        body["reward"] = reward
    return body


@pytest.fixture()
def app(redis: Any, redis_server: PrivateRedis) -> Iterator[Flask]:
    app = create_app({
        "redis_url": redis_server.url, "api_key": KEY, "attribution_window": WINDOW,
        "refresh_interval": 0.01, "redis_timeout": 2.0,
    })  # fmt: skip
    yield app
    app.extensions["artbandit"].close()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    for t in ROW:
        assert client_put(app.test_client(), t, title()) == 200
    return app.test_client()


def client_put(client: FlaskClient, title_id: str, body: dict[str, Any]) -> int:
    return client.put(f"/titles/{title_id}", json=body, headers=ADMIN).status_code


def page(
    client: FlaskClient, titles: list[str], defer: bool = False, user: str = "u1"
) -> list[dict[str, Any]]:
    response = client.post(
        "/impressions", json={"user_id": user, "context": {"romance": 1.0}, "titles": titles, "defer": defer}
    )
    assert response.status_code == 200, response.get_json()
    entries: list[dict[str, Any]] = response.get_json()["impressions"]
    return entries


def post(client: FlaskClient, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.post(path, json=body)
    return response.status_code, response.get_json()


def test_a_page_answers_every_title_in_order(client: FlaskClient) -> None:
    entries = page(client, [ROW[3], "no-such-title", ROW[0]])
    assert [e["title_id"] for e in entries] == [ROW[3], "no-such-title", ROW[0]]
    for e in (entries[0], entries[2]):
        assert set(e) == {
            "title_id", "impression_id", "artwork_id", "propensity", "variant", "policy", "model_version",
            "fallback",
        }  # fmt: skip
        assert e["impression_id"].startswith(e["title_id"] + "~") and e["fallback"] is False
        assert e["artwork_id"] in ("kiss", "scream") and 0 < e["propensity"] <= 1
    assert entries[1] == {
        "title_id": "no-such-title",
        "error": "unknown_title",
        "message": "unknown title 'no-such-title'",
    }
    assert post(client, "/click", {"impression_id": entries[0]["impression_id"]}) == (
        200,
        {"status": "recorded"},
    )


def test_a_page_is_one_redis_round_trip_over_http(
    client: FlaskClient, redis: Any, redis_server: PrivateRedis, round_trips: list[int]
) -> None:
    app = create_app({"redis_url": redis_server.url, "refresh_interval": 60.0})  # no refresh in between
    quiet = app.test_client()
    try:
        page(quiet, ROW)  # warm: titles and models loaded once
        redis.config_resetstat()
        round_trips.clear()
        entries = page(quiet, ROW)
        assert len(entries) == 20 and all(not e["fallback"] for e in entries)
        assert len(round_trips) == 1
        assert redis.info("commandstats")["cmdstat_evalsha"]["calls"] == 20
    finally:
        app.extensions["artbandit"].close()


def test_deferred_rows_count_only_once_activated(app: Flask, client: FlaskClient, redis: Any) -> None:
    entries = page(client, ROW[:10], defer=True)
    ids = [e["impression_id"] for e in entries]
    status, body = post(client, "/activate", {"impression_ids": ids[:4] + ["nonsense"]})
    assert status == 200
    assert body == {"results": {**{i: "activated" for i in ids[:4]}, "nonsense": "unknown"}}
    assert post(client, "/activate", {"impression_ids": ids[:1]})[1] == {
        "results": {ids[0]: "already_active"}
    }
    assert post(client, "/click", {"impression_id": ids[0]}) == (200, {"status": "recorded"})
    assert post(client, "/click", {"impression_id": ids[5]}) == (200, {"status": "recorded"})  # activates it
    for t in ROW[:10]:
        stats = client.get(f"/stats/{t}").get_json()
        shown = t in {e["title_id"] for e in entries[:4]} | {entries[5]["title_id"]}
        assert stats["totals"]["impressions"] == (1 if shown else 0)
        assert stats["totals"]["clicks"] == (1 if t in (ROW[0], ROW[5]) else 0)
    time.sleep(WINDOW + 0.1)
    assert post(client, "/activate", {"impression_ids": ids[6:7]})[1] == {"results": {ids[6]: "expired"}}
    learner = Learner(redis, app.extensions["artbandit"].settings)
    assert learner.step(now=time.time() + 2 * WINDOW + 1) == 5  # 5 shown impressions labelled
    assert learner.applied == 5  # the 5 never shown are never learned
    health = client.get(f"/stats/{ROW[9]}").get_json()["health"]["join"]
    assert health["never_shown"] == 1 and health["pending"] == 0
    shown_health = client.get(f"/stats/{ROW[0]}").get_json()["health"]["join"]
    assert (shown_health["never_shown"], shown_health["clicked"]) == (0, 1)
    # off-policy evaluation reads the labelled events: the never-shown rows are not among them
    assert logged_events(redis, ROW[9], "default") == []
    assert [e.impression_id for e in logged_events(redis, ROW[0], "default")] == [ids[0]]
    # export carries the shown impressions only, with their rewards
    records = [rec for t in ROW[:10] for rec in title_records(redis, t)[0]]
    assert sorted(r["event_id"] for r in records) == sorted(ids[:4] + [ids[5]])
    assert {r["event_id"]: r["reward"] for r in records if r["reward"] == 1.0}.keys() == {ids[0], ids[5]}


def test_graded_rewards_over_http(app: Flask, client: FlaskClient, redis: Any) -> None:
    assert client_put(client, "watch", title({"aggregate": "sum", "min": 0, "max": 90})) == 200
    (first,) = page(client, ["watch"])
    iid = first["impression_id"]
    assert post(client, "/reward", {"impression_id": iid, "value": 30.0, "event_id": "m1"}) == (
        200,
        {"status": "recorded"},
    )
    assert post(client, "/reward", {"impression_id": iid, "value": 30.0, "event_id": "m1"})[1] == {
        "status": "duplicate"
    }
    assert post(client, "/reward", {"impression_id": iid, "value": 75, "event_id": "m2"})[0] == 200
    status, body = post(client, "/reward", {"impression_id": "watch~1~0123456789abcdef", "value": 1})
    assert (status, body["error"]) == (404, "unknown_impression")
    time.sleep(WINDOW + 0.1)
    status, body = post(client, "/reward", {"impression_id": iid, "value": 1, "event_id": "m3"})
    assert (status, body["error"]) == (410, "late_reward") and "attribution window" in body["message"]
    records, _ = title_records(redis, "watch")
    assert [r["reward"] for r in records] == [90.0]  # 30 + 75 clipped to max
    stats = client.get("/stats/watch").get_json()
    (variant,) = stats["variants"]
    assert variant["mean_reward"] == 90.0 and variant["rewarded_labels"] == 1
    assert "mean_reward" not in client.get(f"/stats/{ROW[0]}").get_json()["variants"][0]  # a click title
    html = client.get("/dashboard/watch").get_data(as_text=True)
    assert "Mean reward" in html
