"""The data plane's client keys (ARTBANDIT_CLIENT_KEYS): every deciding and rewarding route refuses a
request without one of the keys (401, with `WWW-Authenticate: Bearer`) or with a wrong one (403), in the
hot path and in Flask alike, before anything is read or logged; keys are compared in constant time;
without keys the data plane is open, as before, and says so."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.store import keys
from service.web import data_plane
from service.web.hot import EXTENSION as HOT
from service.web.hot import HotPath
from tests.security.conftest import ADMIN, API_KEY

CLIENT_KEY = "sec-client-3c9e1f7a5b2d8e4f6a0c"
OLD_CLIENT_KEY = "sec-client-old-0a1b2c3d4e5f6a7b"
TITLE = {"features": ["romance"], "artworks": [{"id": "a"}, {"id": "b"}], "policy": {"name": "uniform"}}
BODIES: dict[str, dict[str, Any]] = {
    "/impression": {"title_id": "t1", "user_id": "u1", "context": {"romance": 1.0}},
    "/impressions": {"user_id": "u1", "titles": [{"title_id": "t1", "context": {"romance": 1.0}}]},
    "/activate": {"impression_ids": ["nope"]},
    "/click": {"impression_id": "nope"},
    "/reward": {"impression_id": "nope", "reward": 1.0},
}
# the admin table's seven bad headers, for the client key
WRONG = [
    ({}, 401),
    ({"Authorization": "Bearer"}, 401),
    ({"Authorization": "Basic " + CLIENT_KEY}, 401),
    ({"Authorization": "Bearer wrong-key"}, 403),
    ({"Authorization": "Bearer " + CLIENT_KEY[:-1]}, 403),  # a prefix of the key
    ({"Authorization": "Bearer " + CLIENT_KEY + "x"}, 403),  # the key plus one character
    ({"Authorization": "Bearer " + CLIENT_KEY.upper()}, 403),
]
CLIENT = {"Authorization": f"Bearer {CLIENT_KEY}"}


def test_every_route_in_the_body_table_is_a_data_plane_route() -> None:
    assert set(BODIES) == data_plane.ROUTES


@pytest.fixture()
def keyed(redis: redis_lib.Redis, redis_server: PrivateRedis) -> Iterator[Flask]:
    app = create_app({
        "redis_url": redis_server.url, "api_key": API_KEY, "redis_timeout": 2.0,
        "client_keys": [OLD_CLIENT_KEY, CLIENT_KEY],
    })  # fmt: skip
    assert app.test_client().put("/titles/t1", json=TITLE, headers=ADMIN).status_code == 200
    yield app
    app.extensions["artbandit"].close()


def flask_only(app: Flask) -> FlaskClient:
    """A client of the Flask app without the hot-path middleware in front."""
    hot: HotPath = app.extensions[HOT]
    app.wsgi_app = hot.flask  # type: ignore[method-assign]
    return app.test_client()


def logged(redis: redis_lib.Redis) -> int:
    return int(redis.xlen(keys.decisions_stream("t1")))


@pytest.mark.parametrize("path", sorted(data_plane.ROUTES))
@pytest.mark.parametrize(("headers", "status"), WRONG)
@pytest.mark.parametrize("serving", ["hot", "flask"])
def test_data_plane_routes_refuse_without_a_client_key(
    keyed: Flask, redis: redis_lib.Redis, serving: str, path: str, headers: dict[str, str], status: int
) -> None:
    client = keyed.test_client() if serving == "hot" else flask_only(keyed)
    response = client.post(path, json=BODIES[path], headers=headers)
    assert response.status_code == status
    body = response.get_json()
    assert body["error"] == {401: "unauthorized", 403: "forbidden"}[status]
    assert "key" in body["message"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert CLIENT_KEY not in response.get_data(as_text=True)
    assert logged(redis) == 0  # refused before anything was decided or logged


@pytest.mark.parametrize("path", sorted(data_plane.ROUTES))
def test_a_refusal_comes_before_the_body_is_looked_at(keyed: Flask, path: str) -> None:
    """Not JSON, too large, wrong method: without a key the answer is still 401, so an unkeyed caller
    learns nothing about the route and costs no body read."""
    client = keyed.test_client()
    assert client.post(path, data="x", content_type="text/plain").status_code == 401
    assert client.post(path, data="x" * 100_000, content_type="application/json").status_code == 401
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("serving", ["hot", "flask"])
@pytest.mark.parametrize("key", [CLIENT_KEY, OLD_CLIENT_KEY])
def test_any_configured_client_key_is_let_through(
    keyed: Flask, redis: redis_lib.Redis, serving: str, key: str
) -> None:
    client = keyed.test_client() if serving == "hot" else flask_only(keyed)
    headers = {"Authorization": f"Bearer {key}"}
    shown = client.post("/impression", json=BODIES["/impression"], headers=headers)
    assert shown.status_code == 200, shown.get_json()
    impression_id = shown.get_json()["impression_id"]
    clicked = client.post("/click", json={"impression_id": impression_id}, headers=headers)
    assert clicked.status_code == 200 and clicked.get_json()["status"] == "recorded"
    assert client.post("/click", json={"impression_id": "nope"}, headers=headers).status_code == 404
    assert logged(redis) == 1


def test_the_admin_key_is_not_a_client_key(keyed: Flask) -> None:
    """Each key opens its own plane: a page backend never needs (or holds) the admin key."""
    client = keyed.test_client()
    assert client.post("/impression", json=BODIES["/impression"], headers=ADMIN).status_code == 403
    assert client.get("/titles", headers=CLIENT).status_code == 403


def test_other_routes_need_no_client_key(keyed: Flask) -> None:
    client = keyed.test_client()
    for path in ("/healthz", "/readyz", "/openapi.json", "/metrics", "/stats/t1"):
        assert client.get(path).status_code == 200, path


def test_client_keys_are_compared_with_compare_digest_against_every_key(
    keyed: Flask, compare_digest_calls: list[tuple[bytes, bytes]]
) -> None:
    calls = compare_digest_calls
    client = keyed.test_client()
    guess, old_key = {"Authorization": "Bearer guess"}, {"Authorization": f"Bearer {OLD_CLIENT_KEY}"}
    assert client.post("/click", json=BODIES["/click"], headers=guess).status_code == 403
    # the first key matching does not end the comparison: the time does not tell which key matched
    assert client.post("/click", json=BODIES["/click"], headers=old_key).status_code == 404
    old, new = OLD_CLIENT_KEY.encode(), CLIENT_KEY.encode()
    assert calls == [(b"guess", old), (b"guess", new), (old, old), (old, new)]


def test_readyz_and_openapi_say_the_data_plane_is_keyed(keyed: Flask) -> None:
    client = keyed.test_client()
    assert client.get("/readyz").get_json() == {"status": "ok", "data_plane": "keyed"}
    doc = client.get("/openapi.json").get_json()
    for path in ("/impression", "/click"):
        op = doc["paths"][path]["post"]
        assert op["security"] == [{"clientKey": []}]
        assert {"401", "403"} <= set(op["responses"])


def test_without_client_keys_the_data_plane_is_open_and_says_so(
    redis: redis_lib.Redis, redis_server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    assert Settings.load(environ={}).client_keys == ()
    with caplog.at_level(logging.WARNING, logger="service.web.data_plane"):
        app = create_app({"redis_url": redis_server.url, "api_key": API_KEY, "redis_timeout": 2.0})
    assert any("data plane" in r.message and "is open" in r.message for r in caplog.records)
    client = app.test_client()
    try:
        assert client.put("/titles/t1", json=TITLE, headers=ADMIN).status_code == 200
        assert client.get("/readyz").get_json() == {"status": "ok", "data_plane": "open"}
        shown = client.post("/impression", json=BODIES["/impression"])  # no header at all, as before
        assert shown.status_code == 200
        impression_id = shown.get_json()["impression_id"]
        assert client.post("/click", json={"impression_id": impression_id}).status_code == 200
        # a stray header is ignored when no keys are configured (clients may send keys before the service
        # requires them: the first step of turning keys on)
        assert client.post("/impression", json=BODIES["/impression"], headers=CLIENT).status_code == 200
        assert "security" not in client.get("/openapi.json").get_json()["paths"]["/impression"]["post"]
    finally:
        app.extensions["artbandit"].close()


def test_a_keyed_service_logs_no_open_warning(
    redis: redis_lib.Redis, redis_server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.web.data_plane"):
        app = create_app({"redis_url": redis_server.url, "client_keys": CLIENT_KEY})
    app.extensions["artbandit"].close()
    assert not [r for r in caplog.records if r.name == "service.web.data_plane"]


def test_every_post_route_of_the_app_is_admin_or_data_plane(keyed: Flask) -> None:
    """A new deciding or rewarding route must join data_plane.ROUTES, or it would be open with keys on."""
    admin = {"/titles/<title_id>"}
    for rule in keyed.url_map.iter_rules():
        if rule.methods and rule.methods & {"POST", "PUT", "DELETE", "PATCH"}:
            assert rule.rule in data_plane.ROUTES | admin, rule.rule


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", ()), ("a", ("a",)), ("a,b", ("a", "b")), (" a , b ,", ("a", "b"))],
)
def test_client_keys_from_the_environment(raw: str, expected: tuple[str, ...]) -> None:
    assert Settings.load(environ={"ARTBANDIT_CLIENT_KEYS": raw}).client_keys == expected


@pytest.mark.parametrize("bad", ["has space", "tab\tkey", "naïve"])
def test_a_key_that_cannot_travel_in_a_header_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ValueError, match="client_keys"):
        Settings.load({"client_keys": [bad]}, environ={})


def test_admin_keys_are_api_key_then_api_keys() -> None:
    settings = Settings.load(environ={"ARTBANDIT_API_KEY": "one", "ARTBANDIT_API_KEYS": "two,three"})
    assert settings.admin_keys == ("one", "two", "three")
    assert Settings.load(environ={"ARTBANDIT_API_KEYS": "two"}).admin_keys == ("two",)
    assert Settings.load(environ={}).admin_keys == ()
    # ARTBANDIT_API_KEY is one opaque key, whatever it contains, as before
    odd = "a key, with commas"
    assert Settings.load(environ={"ARTBANDIT_API_KEY": odd}).admin_keys == (odd,)


def test_keys_never_appear_in_the_settings_repr() -> None:
    settings = Settings.load({"api_keys": [API_KEY], "client_keys": [CLIENT_KEY]}, environ={})
    assert API_KEY not in repr(settings) and CLIENT_KEY not in repr(settings)


@pytest.mark.parametrize("serving", ["hot", "flask"])
def test_refusals_are_counted_and_timed(keyed: Flask, serving: str) -> None:
    client = keyed.test_client() if serving == "hot" else flask_only(keyed)
    assert client.post("/click", json=BODIES["/click"]).status_code == 401
    wrong = {"Authorization": "Bearer x"}
    assert client.post("/click", json=BODIES["/click"], headers=wrong).status_code == 403
    text = client.get("/metrics").get_data(as_text=True)
    assert 'artbandit_http_errors_total{code="unauthorized"} 1.0' in text
    assert 'artbandit_http_errors_total{code="forbidden"} 1.0' in text
    assert 'route="/click",status="401"' in text and 'route="/click",status="403"' in text
