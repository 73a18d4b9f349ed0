"""The loop through HTTP (Flask test client, real Redis): admin PUT -> impressions -> clicks -> learner
step -> the served model changes; plus the admin API's life cycle and the stats endpoint."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.devstack.redis_server import PrivateRedis
from service.learning.learner import Learner
from simulator.export import export_from_redis

KEY = "flow-key"
ADMIN = {"Authorization": f"Bearer {KEY}"}
WINDOW = 60.0
TITLE = {
    "name": "Two Tastes",
    "features": ["romance", "horror"],
    "artworks": [
        {"id": "kiss", "features": {"romance": 1.0}},
        {"id": "scream", "features": {"horror": 1.0}},
    ],
    "policy": {"name": "linucb", "params": {"alpha": 0.2}},
}
ROMANCE = {"romance": 1.0, "horror": 0.0}
HORROR = {"romance": 0.0, "horror": 1.0}


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
    return app.test_client()


def impression(
    client: FlaskClient, user: str, context: dict[str, float], title: str = "two-tastes"
) -> dict[str, Any]:
    response = client.post("/impression", json={"title_id": title, "user_id": user, "context": context})
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_put_impressions_clicks_learn_and_the_served_model_changes(
    app: Flask, client: FlaskClient, redis: Any, tmp_path: Path
) -> None:
    assert client.put("/titles/two-tastes", json=TITLE, headers=ADMIN).status_code == 200
    # Viewers click the artwork matching their taste, and nothing else.
    served_before = []
    clicks = 0
    for i in range(160):
        taste, wanted = (ROMANCE, "kiss") if i % 2 == 0 else (HORROR, "scream")
        body = impression(client, f"user-{i}", taste)
        served_before.append(body)
        assert body["fallback"] is False and body["model_version"] == 0
        assert body["propensity"] > 0
        if body["artwork_id"] == wanted:
            assert client.post("/click", json={"impression_id": body["impression_id"]}).get_json() == {
                "status": "recorded"
            }
            clicks += 1
    assert 40 < clicks < 120  # a fresh policy explores both artworks

    # The learner labels the rest reward 0 once their window has passed, learns, and publishes.
    learner = Learner(redis, app.extensions["artbandit"].settings)
    assert learner.step(now=time.time() + WINDOW + 1) == 160

    deadline = time.monotonic() + 5
    probes = 1
    while impression(client, "probe", ROMANCE)["model_version"] == 0:  # the worker swaps the snapshot in
        assert time.monotonic() < deadline, "the API never served the published model"
        probes += 1
        time.sleep(0.02)

    after: Counter[tuple[str, str]] = Counter()
    for i in range(60):
        for taste, name in ((ROMANCE, "romance"), (HORROR, "horror")):
            body = impression(client, f"later-{i}", taste)
            assert body["model_version"] >= 1
            after[(name, body["artwork_id"])] += 1
    # Learned: each taste now gets its artwork almost always (greedy mass, minus the exploration floor).
    assert after[("romance", "kiss")] >= 54
    assert after[("horror", "scream")] >= 54

    stats = client.get("/stats/two-tastes").get_json()
    assert stats["totals"]["impressions"] == 160 + probes + 120
    assert stats["totals"]["clicks"] == clicks

    # `artbandit export` reads the same logs back (the 160 labelled decisions), on one Redis or a cluster
    out = tmp_path / "logs.jsonl"
    assert export_from_redis(app.extensions["artbandit"].settings.redis_url, out) == 160
    assert sum(json.loads(line)["_label_cost"] == -1 for line in out.read_text().splitlines()) == clicks


def test_title_admin_life_cycle(client: FlaskClient) -> None:
    put = client.put("/titles/two-tastes", json=TITLE, headers=ADMIN)
    assert put.status_code == 200
    first_version = put.get_json()["catalog_version"]
    assert put.get_json()["title"]["title_id"] == "two-tastes"

    got = client.get("/titles/two-tastes", headers=ADMIN).get_json()
    assert got["artworks"][0] == {"id": "kiss", "features": {"romance": 1.0}}
    assert got["policy"] == {"name": "linucb", "params": {"alpha": 0.2}}

    changed = {**TITLE, "artworks": [*TITLE["artworks"], {"id": "laugh", "image_url": "/static/laugh.png"}]}
    put2 = client.put("/titles/two-tastes", json=changed, headers=ADMIN)
    assert put2.get_json()["catalog_version"] > first_version
    listed = client.get("/titles", headers=ADMIN).get_json()
    assert [t["title_id"] for t in listed["titles"]] == ["two-tastes"]
    assert [a["id"] for a in listed["titles"][0]["artworks"]] == ["kiss", "scream", "laugh"]

    assert client.delete("/titles/two-tastes", headers=ADMIN).get_json() == {"deleted": "two-tastes"}
    assert client.get("/titles/two-tastes", headers=ADMIN).status_code == 404


def test_catalog_changes_reach_serving_without_restart(client: FlaskClient) -> None:
    uniform = {**TITLE, "policy": {"name": "uniform"}}
    client.put("/titles/two-tastes", json=uniform, headers=ADMIN)
    assert {impression(client, f"u{i}", ROMANCE)["artwork_id"] for i in range(30)} == {"kiss", "scream"}

    grown = {**uniform, "artworks": [*TITLE["artworks"], {"id": "laugh"}]}
    client.put("/titles/two-tastes", json=grown, headers=ADMIN)
    time.sleep(0.05)  # > refresh_interval
    seen = {impression(client, f"v{i}", ROMANCE)["artwork_id"] for i in range(60)}
    assert seen == {"kiss", "scream", "laugh"}

    client.delete("/titles/two-tastes", headers=ADMIN)
    time.sleep(0.05)
    gone = client.post("/impression", json={"title_id": "two-tastes", "user_id": "u", "context": ROMANCE})
    assert gone.status_code == 404


def test_experiment_variants_are_sticky_and_reported(client: FlaskClient) -> None:
    body = {
        **{k: v for k, v in TITLE.items() if k != "policy"},
        "experiment": {
            "control": "control",
            "variants": [
                {"name": "control", "weight": 1, "policy": {"name": "fixed", "params": {"arm": "kiss"}}},
                {"name": "learner", "weight": 1, "policy": {"name": "linucb"}},
            ],
        },
    }
    assert client.put("/titles/two-tastes", json=body, headers=ADMIN).status_code == 200
    variants = {}
    control_artworks: Counter[str] = Counter()
    for i in range(40):
        first = impression(client, f"user-{i}", ROMANCE)
        again = impression(client, f"user-{i}", HORROR)
        assert first["variant"] == again["variant"]  # sticky per viewer
        variants[first["variant"]] = first["policy"]
        if first["variant"] == "control":
            control_artworks[first["artwork_id"]] += 1
    assert variants == {"control": "fixed", "learner": "linucb"}
    # the fixed control shows its artwork except for the exploration floor (2.5% per other artwork)
    assert control_artworks["kiss"] >= 10 and control_artworks["scream"] <= 3

    stats = client.get("/stats/two-tastes").get_json()
    assert stats["control"] == "control"
    assert {v["variant"] for v in stats["variants"]} == {"control", "learner"}
    assert sum(v["impressions"] for v in stats["variants"]) == 80


def test_stats_token_when_configured(redis: Any, redis_server: PrivateRedis) -> None:
    app = create_app({"redis_url": redis_server.url, "api_key": KEY, "dashboard_token": "viewer"})
    client = app.test_client()
    client.put("/titles/two-tastes", json=TITLE, headers=ADMIN)
    assert client.get("/stats/two-tastes").status_code == 401
    assert client.get("/stats/two-tastes?token=nope").status_code == 403
    assert client.get("/stats/two-tastes?token=viewer").status_code == 200
    assert client.get("/stats/two-tastes", headers={"Authorization": "Bearer viewer"}).status_code == 200
    assert client.get("/stats/two-tastes", headers=ADMIN).status_code == 200


# Every test here runs on one Redis and on a 3-master Redis Cluster (tests/conftest.py).
@pytest.fixture()
def redis_server(store_server: Any) -> Any:
    return store_server


@pytest.fixture()
def redis(store: Any) -> Any:
    return store
