"""The Python client against the real app (httpx's WSGI transport, real Redis) and against a service
that is unreachable or too slow (cached default artworks instead of exceptions)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask

from service.app import create_app
from service.client import ArtbanditClient, RequestRejected, Unavailable
from service.devstack.redis_server import PrivateRedis

KEY = "client-key"
TITLE = {
    "features": ["romance"],
    "artworks": [{"id": "kiss"}, {"id": "scream"}],
    "default_artwork": "scream",
}


@pytest.fixture()
def app(redis: Any, redis_server: PrivateRedis) -> Iterator[Flask]:
    app = create_app({"redis_url": redis_server.url, "api_key": KEY, "redis_timeout": 2.0})
    client = app.test_client()
    for t in ("t1", "t2"):
        assert (
            client.put(f"/titles/{t}", json=TITLE, headers={"Authorization": f"Bearer {KEY}"}).status_code
            == 200
        )
    yield app
    app.extensions["artbandit"].close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_call_against_the_service(app: Flask) -> None:
    with ArtbanditClient("http://ab", api_key=KEY, transport=httpx.WSGITransport(app=app), timeout=5) as ab:
        assert ab.refresh_catalog() == {"t1": "scream", "t2": "scream"}
        row = ab.page("u1", {"romance": 1.0}, ["t1", "t2", "nope"], defer=True)
        assert [e["title_id"] for e in row] == ["t1", "t2", "nope"]
        assert row[2]["error"] == "unknown_title"
        ids = [row[0]["impression_id"], row[1]["impression_id"]]
        assert ab.activate(ids) == {i: "activated" for i in ids}
        assert ab.click(ids[0]) == "recorded"
        assert ab.click(ids[0]) == "duplicate"
        assert ab.reward(ids[1], 0.5, event_id="e1") == "recorded"
        single = ab.impression("t1", "u2", {"romance": 0.3})
        assert single["fallback"] is False and single["artwork_id"] in ("kiss", "scream")
        with pytest.raises(RequestRejected) as err:
            ab.page("u1", {}, [])
        assert (err.value.status, err.value.code) == (400, "invalid_request")
        with pytest.raises(RequestRejected) as err:
            ab.reward("t1~1~0123456789abcdef", 1.0)
        assert err.value.code == "unknown_impression"


def test_unreachable_service_serves_cached_defaults() -> None:
    with ArtbanditClient(f"http://127.0.0.1:{free_port()}", defaults={"t1": "scream"}) as ab:
        row = ab.page("u1", {}, ["t1", "unknown-here"])
        assert row[0] == {
            "title_id": "t1", "impression_id": None, "artwork_id": "scream", "propensity": 1.0,
            "variant": None, "policy": None, "model_version": None, "fallback": True,
        }  # fmt: skip
        assert row[1]["error"] == "unavailable"
        assert ab.impression("t1", "u", {})["artwork_id"] == "scream"
        with pytest.raises(Unavailable):
            ab.impression("unknown-here", "u", {})
        with pytest.raises(Unavailable):
            ab.click("t1~1~0123456789abcdef")


def test_a_slow_service_times_out_into_defaults(app: Flask) -> None:
    wsgi = httpx.WSGITransport(app=app)

    def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/impressions":
            raise httpx.ReadTimeout("timed out", request=request)  # what httpx raises past the timeout
        return wsgi.handle_request(request)

    with ArtbanditClient("http://ab", api_key=KEY, transport=httpx.MockTransport(slow), timeout=0.05) as ab:
        ab.refresh_catalog()
        started = time.monotonic()
        row = ab.page("u1", {}, ["t2"])
        assert row[0]["fallback"] is True and row[0]["artwork_id"] == "scream"
        assert time.monotonic() - started < 1.0


def test_a_5xx_answer_is_unavailable(app: Flask) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "store_unavailable", "message": "retry"})

    with ArtbanditClient("http://ab", transport=httpx.MockTransport(broken), defaults={"t1": "kiss"}) as ab:
        assert ab.page("u", {}, ["t1"])[0]["artwork_id"] == "kiss"
        with pytest.raises(Unavailable):
            ab.activate(["t1~1~0123456789abcdef"])


def test_the_client_key_opens_the_data_plane(redis: Any, redis_server: PrivateRedis) -> None:
    """With ARTBANDIT_CLIENT_KEYS set, the data-plane calls carry the client key and the catalog call the
    admin key; a client without the client key is refused (403 with a wrong one), not served defaults."""
    app = create_app({"redis_url": redis_server.url, "api_key": KEY, "client_keys": "ck-1,ck-2"})
    try:
        admin = {"Authorization": f"Bearer {KEY}"}
        assert app.test_client().put("/titles/t1", json=TITLE, headers=admin).status_code == 200
        kw: dict[str, Any] = {"api_key": KEY, "transport": httpx.WSGITransport(app=app), "timeout": 5}
        for key in ("ck-1", "ck-2"):  # both keys of a rotation work
            with ArtbanditClient("http://ab", client_key=key, **kw) as ab:
                assert ab.refresh_catalog() == {"t1": "scream"}
                (entry,) = ab.page("u1", {"romance": 1.0}, ["t1"])
                assert entry["fallback"] is False
                assert ab.click(entry["impression_id"]) == "recorded"
        with ArtbanditClient("http://ab", client_key="old", **kw) as ab:
            with pytest.raises(RequestRejected) as err:
                ab.impression("t1", "u1", {"romance": 1.0})
            assert err.value.status == 403
        with ArtbanditClient("http://ab", **kw) as ab:
            with pytest.raises(RequestRejected) as err:
                ab.click("t1~1~0123456789abcdef")
            assert err.value.status == 401
    finally:
        app.extensions["artbandit"].close()
