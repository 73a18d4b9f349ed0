"""Redis goes away and comes back (a dedicated redis-server, stopped and restarted on the same port):
/impression keeps answering with the default artwork, /click says 503 with Retry-After, /readyz says
not ready; after the restart the same app answers normally again, without being restarted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.app import create_app
from service.devstack.redis_server import PrivateRedis

KEY = "degraded-key"
TITLE = {
    "features": ["romance", "horror"],
    "artworks": [{"id": "kiss"}, {"id": "scream"}, {"id": "poster"}],
    "default_artwork": "poster",
    "policy": {"name": "uniform"},
}
IMPRESSION = {"title_id": "fragile", "user_id": "u1", "context": {"romance": 1.0}}


@pytest.fixture()
def own_redis() -> Iterator[PrivateRedis]:
    # AOF with fsync always: the catalog written before the stop is there after the restart
    server = PrivateRedis(appendonly=True, appendfsync="always").start()
    yield server
    server.stop()


@pytest.fixture()
def client(own_redis: PrivateRedis) -> Iterator[FlaskClient]:
    app = create_app({"redis_url": own_redis.url, "api_key": KEY, "refresh_interval": 0.05})
    yield app.test_client()
    app.extensions["artbandit"].close()


def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_fallback_while_redis_is_down_and_recovery_without_restart(
    client: FlaskClient, own_redis: PrivateRedis
) -> None:
    assert (
        client.put("/titles/fragile", json=TITLE, headers={"Authorization": f"Bearer {KEY}"}).status_code
        == 200
    )
    normal = client.post("/impression", json=IMPRESSION).get_json()
    assert normal["fallback"] is False
    assert client.get("/readyz").status_code == 200

    own_redis.stop(cleanup=False)

    for _ in range(5):
        down = client.post("/impression", json=IMPRESSION)
        assert down.status_code == 200
        body = down.get_json()
        assert body["fallback"] is True
        assert body["impression_id"] is None
        assert body["artwork_id"] == "poster"  # the title's default artwork
    click = client.post("/click", json={"impression_id": normal["impression_id"]})
    assert click.status_code == 503
    assert click.get_json()["error"] == "store_unavailable"
    assert int(click.headers["Retry-After"]) >= 1
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["status"] == "unavailable"
    assert client.get("/healthz").status_code == 200  # alive, just not ready
    assert client.get("/metrics").status_code == 200  # the scrape itself never fails
    assert b"artbandit_store_up 0.0" in client.get("/metrics").data
    assert client.get("/titles", headers={"Authorization": f"Bearer {KEY}"}).status_code == 503

    own_redis.start()  # same port, same directory: the AOF is replayed

    until(lambda: client.post("/impression", json=IMPRESSION).get_json()["fallback"] is False)
    fresh = client.post("/impression", json=IMPRESSION).get_json()
    assert fresh["fallback"] is False and fresh["impression_id"]
    until(lambda: client.post("/click", json={"impression_id": fresh["impression_id"]}).status_code != 503)
    assert client.post("/click", json={"impression_id": fresh["impression_id"]}).get_json() == {
        "status": "duplicate"
    }
    assert client.post("/click", json={"impression_id": normal["impression_id"]}).get_json() == {
        "status": "recorded"
    }
    assert client.get("/readyz").status_code == 200
