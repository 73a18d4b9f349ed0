"""Every bad input gets a JSON error with the right status and a message naming what to fix; never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.devstack.redis_server import PrivateRedis
from service.web import hot as hot_path

KEY = "test-admin-key"
ADMIN = {"Authorization": f"Bearer {KEY}"}
TITLE = {
    "name": "Stranger Things",
    "features": ["romance", "comedy", "horror"],
    "artworks": [
        {"id": "kiss", "features": {"romance": 1.0}},
        {"id": "laugh", "features": {"comedy": 1.0}},
        {"id": "scream", "features": {"horror": 1.0}},
    ],
    "policy": {"name": "linucb", "params": {"alpha": 0.5}},
}
JSON = "application/json"


@pytest.fixture()
def app(redis: Any, redis_server: PrivateRedis) -> Iterator[Flask]:
    app = create_app({"redis_url": redis_server.url, "api_key": KEY, "redis_timeout": 2.0})
    statuses: list[int] = []
    served = app.wsgi_app  # the hot path in front of Flask: record what either of them answers

    def record(environ: dict[str, Any], start_response: Any) -> Any:
        def recording_start(status: str, headers: Any, *exc_info: Any) -> Any:
            statuses.append(int(status.split()[0]))
            return start_response(status, headers, *exc_info)

        return served(environ, recording_start)

    app.wsgi_app = record  # type: ignore[method-assign]
    yield app
    assert 500 not in statuses, "a request ended in a 500"
    app.extensions["artbandit"].close()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    c = app.test_client()
    assert c.put("/titles/stranger-things", json=TITLE, headers=ADMIN).status_code == 200
    return c


def imp(**fields: Any) -> dict[str, Any]:
    body = {"title_id": "stranger-things", "user_id": "u1", "context": {"romance": 0.5}}
    body.update(fields)
    return body


def page(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"titles": ["stranger-things"], "user_id": "u1", "context": {"romance": 0.5}}
    body.update(fields)
    return body


def raw(text: str, content_type: str | None = JSON, headers: dict[str, str] | None = None) -> dict[str, Any]:
    kw: dict[str, Any] = {"data": text, "headers": headers or {}}
    if content_type is not None:
        kw["content_type"] = content_type
    return kw


def as_json(body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return raw(json.dumps(body), JSON, headers)


def title_with(**changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(TITLE))
    body.update(changes)
    return body


BAD_ARTWORK_FEATURE = [{"id": "kiss", "features": {"zombie": 1.0}}]
EXPERIMENT = {"variants": [{"name": "a", "weight": 1, "policy": {"name": "uniform"}}]}
EXPERIMENT_BAD_CONTROL = {
    "control": "nobody",
    "variants": [{"name": "a", "weight": 1, "policy": {"name": "uniform"}}],
}

BAD, MALFORMED, UNAUTH, FORBID = "invalid_request", "malformed_json", "unauthorized", "forbidden"
NOT_ALLOWED, MEDIA, ST = "method_not_allowed", "unsupported_media_type", "stranger-things"
POST, PUT, IMP, CLICK, T2 = "POST", "PUT", "/impression", "/click", "/titles/t2"
PAGE, ACT, REWARD = "/impressions", "/activate", "/reward"
NO_POLICY = {k: v for k, v in TITLE.items() if k != "policy"}
WRONG_KEY = {"Authorization": f"Bearer {KEY}x"}


def ctx(text: str) -> dict[str, Any]:
    """A raw impression body whose context is `text` (JSON that json.dumps cannot write, e.g. NaN)."""
    return raw('{"title_id": "stranger-things", "user_id": "u", "context": {' + text + "}}")


def put(body: Any) -> dict[str, Any]:
    return as_json(body, ADMIN)


# (method, path, request kwargs, status, error code, message fragment)
# fmt: off
CASES = [
    # ------------------------------------------------------------------ POST /impression
    (POST, IMP, raw("{bad"), 400, MALFORMED, "not valid JSON"),
    (POST, IMP, raw(""), 400, MALFORMED, "not valid JSON"),
    (POST, IMP, raw('{"title_id": "stranger-things",'), 400, MALFORMED, "not valid JSON"),
    (POST, IMP, raw("\xff\xfe"), 400, MALFORMED, "not valid JSON"),
    (POST, IMP, as_json([1, 2]), 400, BAD, "body: Input should be an object"),
    (POST, IMP, as_json("hello"), 400, BAD, "body: Input should be an object"),
    (POST, IMP, as_json({"title_id": ST}), 400, BAD, "user_id: this field is required"),
    (POST, IMP, as_json(imp(user_id=7)), 400, BAD, "user_id: Input should be a valid string"),
    (POST, IMP, as_json(imp(user_id="")), 400, BAD, "user_id: String should have at least 1"),
    (POST, IMP, as_json(imp(user_id="u" * 300)), 400, BAD, "user_id: String should have at most 256"),
    (POST, IMP, as_json(imp(title_id=None)), 400, BAD, "title_id: Input should be a valid string"),
    (POST, IMP, as_json(imp(context=[1, 2])), 400, BAD, "context: Input should be an object"),
    (POST, IMP, as_json(imp(context={"romance": "0.5"})), 400, BAD, "context.romance: Input should be a"),
    (POST, IMP, as_json(imp(context={"romance": True})), 400, BAD, "context.romance: Input should be a"),
    (POST, IMP, as_json(imp(context={"romance": None})), 400, BAD, "context.romance"),
    (POST, IMP, ctx('"romance": NaN'), 400, BAD, "context.romance: Input should be a finite"),
    (POST, IMP, ctx('"horror": Infinity'), 400, BAD, "context.horror: Input should be a finite"),
    (POST, IMP, ctx('"horror": -Infinity'), 400, BAD, "context.horror: Input should be a finite"),
    (POST, IMP, ctx('"horror": 1e999'), 400, BAD, "context.horror: Input should be a finite"),
    (POST, IMP, ctx('"horror": 1e308'), 400, BAD, "feature 'horror' is 1e+308; policies score values within"),
    (POST, IMP, as_json(imp(context={"zombie": 1.0})), 400, BAD, "unknown feature 'zombie'"),
    (POST, IMP, as_json(imp(extra=1)), 400, BAD, "extra: unknown field"),
    (POST, IMP, as_json(imp(title_id="no-such-title")), 404, "unknown_title", "no-such-title"),
    (POST, IMP, as_json(imp(user_id="u" * 70_000)), 413, "payload_too_large", "larger than the limit"),
    (POST, IMP, raw(json.dumps(imp()), "text/plain"), 415, MEDIA, "application/json"),
    (POST, IMP, raw(json.dumps(imp()), None), 415, MEDIA, "application/json"),
    (POST, IMP, raw("a=1", "application/x-www-form-urlencoded"), 415, MEDIA, "got application/x-www-form"),
    ("GET", "/impression", {}, 405, NOT_ALLOWED, "allowed: POST"),
    ("DELETE", "/impression", {}, 405, NOT_ALLOWED, "allowed: POST"),
    # ------------------------------------------------------------------ POST /click
    (POST, CLICK, raw("{"), 400, MALFORMED, "not valid JSON"),
    (POST, CLICK, as_json({}), 400, BAD, "impression_id: this field is required"),
    (POST, CLICK, as_json({"impression_id": 12}), 400, BAD, "impression_id: Input should be a valid str"),
    (POST, CLICK, as_json({"impression_id": "x" * 200}), 400, BAD, "impression_id: String should have at"),
    (POST, CLICK, as_json({"impression_id": "nope"}), 404, "unknown_impression", "no impression 'nope'"),
    (POST, CLICK, as_json({"impression_id": f"{ST}~29930793~27338947c684e186"}), 404, "unknown_impression",
     "never served"),
    (POST, CLICK, raw('{"impression_id": "a"}', "text/html"), 415, MEDIA, "application/json"),
    ("PUT", "/click", {}, 405, NOT_ALLOWED, "allowed: POST"),
    # ------------------------------------------------------------------ POST /impressions (a page)
    (POST, PAGE, raw("{bad"), 400, MALFORMED, "not valid JSON"),
    (POST, PAGE, as_json(page(titles=[])), 400, BAD, "titles: List should have at least 1"),
    (POST, PAGE, as_json(page(titles=[f"t{i}" for i in range(101)])), 400, BAD, "at most 100"),
    (POST, PAGE, as_json(page(titles=[ST, "x", ST])), 400, BAD, "repeated: ['stranger-things']"),
    (POST, PAGE, as_json(page(titles=ST)), 400, BAD, "titles: Input should be a valid array"),
    (POST, PAGE, as_json(page(titles=[7])), 400, BAD, "titles[0]: Input should be a valid string"),
    (POST, PAGE, as_json(page(titles=[""])), 400, BAD, "titles[0]: String should have at least 1"),
    (POST, PAGE, as_json({"titles": [ST]}), 400, BAD, "user_id: this field is required"),
    (POST, PAGE, as_json(page(user_id=None)), 400, BAD, "user_id: Input should be a valid string"),
    (POST, PAGE, as_json(page(defer="yes")), 400, BAD, "defer: Input should be a valid boolean"),
    (POST, PAGE, as_json(page(defer=1)), 400, BAD, "defer: Input should be a valid boolean"),
    (POST, PAGE, as_json(page(context={"romance": "1"})), 400, BAD, "context.romance: Input should be a"),
    (POST, PAGE, as_json(page(context={"romance": 1e300})), 400, BAD, "title 'stranger-things': feature"),
    (POST, PAGE, as_json(page(extra=1)), 400, BAD, "extra: unknown field"),
    (POST, PAGE, raw(json.dumps(page()), "text/plain"), 415, MEDIA, "application/json"),
    ("GET", PAGE, {}, 405, NOT_ALLOWED, "allowed: POST"),
    # ------------------------------------------------------------------ POST /activate
    (POST, ACT, raw("[oops"), 400, MALFORMED, "not valid JSON"),
    (POST, ACT, as_json({}), 400, BAD, "impression_ids: this field is required"),
    (POST, ACT, as_json({"impression_ids": []}), 400, BAD, "impression_ids: List should have at least 1"),
    (POST, ACT, as_json({"impression_ids": ["a"] * 101}), 400, BAD, "List should have at most 100"),
    (POST, ACT, as_json({"impression_ids": "abc"}), 400, BAD, "impression_ids: Input should be a valid"),
    (POST, ACT, as_json({"impression_ids": [1]}), 400, BAD, "impression_ids[0]: Input should be a valid str"),
    (POST, ACT, as_json({"impression_ids": ["x" * 200]}), 400, BAD, "String should have at most 128"),
    ("GET", ACT, {}, 405, NOT_ALLOWED, "allowed: POST"),
    # ------------------------------------------------------------------ POST /reward
    (POST, REWARD, raw("{"), 400, MALFORMED, "not valid JSON"),
    (POST, REWARD, as_json({"impression_id": "a"}), 400, BAD, "value: this field is required"),
    (POST, REWARD, as_json({"impression_id": "a", "value": "1"}), 400, BAD, "value: Input should be a"),
    (POST, REWARD, as_json({"impression_id": "a", "value": True}), 400, BAD, "value: Input should be a"),
    (POST, REWARD, as_json({"impression_id": "a", "value": None}), 400, BAD, "value: Input should be a"),
    (POST, REWARD, raw('{"impression_id": "a", "value": NaN}'), 400, BAD, "value: Input should be a fin"),
    (POST, REWARD, raw('{"impression_id": "a", "value": 1e999}'), 400, BAD, "value: Input should be a fin"),
    (POST, REWARD, as_json({"impression_id": "a", "value": 1, "event_id": ""}), 400, BAD, "event_id: String"),
    (POST, REWARD, as_json({"impression_id": "a", "value": 1, "event_id": 5}), 400, BAD, "event_id: Input"),
    (POST, REWARD, as_json({"impression_id": "nope", "value": 1}), 404, "unknown_impression", "no impr"),
    ("GET", REWARD, {}, 405, NOT_ALLOWED, "allowed: POST"),
    # ------------------------------------------------------------------ routes
    ("GET", "/no/such/route", {}, 404, "not_found", "no route GET /no/such/route"),
    ("POST", "/impressionz", as_json(imp()), 404, "not_found", "/openapi.json"),
    ("GET", "/stats/no-such-title", {}, 404, "unknown_title", "no-such-title"),
    ("POST", "/healthz", {}, 405, NOT_ALLOWED, "allowed: GET"),
    # ------------------------------------------------------------------ admin: authentication
    ("GET", "/titles", {}, 401, UNAUTH, "Authorization: Bearer"),
    ("GET", "/titles", {"headers": {"Authorization": "Bearer wrong-key"}}, 403, FORBID, "admin key is wrong"),
    ("GET", "/titles", {"headers": {"Authorization": f"Basic {KEY}"}}, 401, UNAUTH, "'Bearer <key>'"),
    ("GET", "/titles", {"headers": {"Authorization": "Bearer "}}, 401, UNAUTH, "'Bearer <key>'"),
    ("PUT", "/titles/new-title", as_json(TITLE), 401, UNAUTH, "admin key"),
    ("PUT", "/titles/new-title", as_json(TITLE, WRONG_KEY), 403, FORBID, "wrong"),
    ("DELETE", f"/titles/{ST}", {}, 401, UNAUTH, "admin key"),
    ("GET", f"/titles/{ST}", {"headers": {"Authorization": "Bearer ünïcode"}}, 403, FORBID, "wrong"),
    # ------------------------------------------------------------------ admin: bodies
    (PUT, T2, raw("{oops", JSON, ADMIN), 400, MALFORMED, "not valid JSON"),
    (PUT, T2, put([TITLE]), 400, BAD, "body: Input should be an object"),
    (PUT, T2, raw(json.dumps(TITLE), "text/plain", ADMIN), 415, MEDIA, "application/json"),
    (PUT, T2, put(title_with(artworks=[])), 400, BAD, "artworks: List should have at least 1"),
    (PUT, T2, put(title_with(artworks=BAD_ARTWORK_FEATURE)), 400, BAD,
     "uses features not in the title's features: ['zombie']"),
    (PUT, T2, put(title_with(artworks=[{"id": "a"}, {"id": "a"}])), 400, BAD, "artwork ids must be unique"),
    (PUT, T2, put(title_with(artworks=[{"id": "bad id!"}])), 400, BAD,
     "artworks[0].id: String should match pattern"),
    (PUT, T2, raw(json.dumps(TITLE).replace('"romance": 1.0', '"romance": NaN'), JSON, ADMIN), 400, BAD,
     "must be finite"),
    (PUT, T2, put(title_with(policy={"name": "magic"})), 400, BAD, "policy.name: unknown policy 'magic'"),
    (PUT, T2, put(title_with(policy={"name": "linucb", "params": {"alpha": -1}})), 400, BAD,
     "alpha must be in [0, inf]"),
    (PUT, T2, put(title_with(policy={"name": "linucb", "params": {"gamma": 1}})), 400, BAD,
     "allowed parameters"),
    (PUT, T2, put(title_with(policy={"name": "linucb", "params": {"floor": 0}})), 400, BAD,
     "floor must be > 0 for a served policy"),
    (PUT, T2, put(title_with(experiment=EXPERIMENT)), 400, BAD, "give either policy or experiment"),
    (PUT, T2, put({**NO_POLICY, "experiment": EXPERIMENT_BAD_CONTROL}), 400, BAD,
     "control 'nobody' is not one of the variants"),
    (PUT, T2, put(title_with(title_id="other")), 400, BAD, "differs from the URL"),
    ("PUT", "/titles/bad%20id", put(TITLE), 400, BAD, "title_id: String should match pattern"),
    (PUT, T2, put(title_with(surprise=True)), 400, BAD, "surprise: unknown field"),
    (PUT, T2, put(title_with(reward={"aggregate": "mean"})), 400, BAD, "reward.aggregate: Input should be"),
    (PUT, T2, put(title_with(reward={"min": 2, "max": 1})), 400, BAD, "reward.min must be below reward.max"),
    (PUT, T2, put(title_with(features="romance")), 400, BAD, "features: Input should be a valid list"),
    ("GET", "/titles/no-such-title", {"headers": ADMIN}, 404, "unknown_title", "no-such-title"),
    ("DELETE", "/titles/no-such-title", {"headers": ADMIN}, 404, "unknown_title", "no-such-title"),
    ("PATCH", f"/titles/{ST}", put(TITLE), 405, NOT_ALLOWED, "allowed: DELETE, GET, HEAD, PUT"),
    ("POST", "/titles", put(TITLE), 405, NOT_ALLOWED, "allowed: GET, HEAD"),
]
# fmt: on


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code", "fragment"),
    CASES,
    ids=[f"{i:02d}-{c[0]}-{c[1]}-{c[3]}" for i, c in enumerate(CASES)],
)
def test_bad_input_gets_json_error(
    client: FlaskClient, method: str, path: str, kwargs: dict[str, Any], status: int, code: str, fragment: str
) -> None:
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"error", "message"}
    assert body["error"] == code
    assert fragment in body["message"]


HOT_CASES = [c for c in CASES if c[1] in ("/impression", "/click")]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code", "fragment"),
    HOT_CASES,
    ids=[f"{i:02d}-{c[0]}-{c[1]}-{c[3]}" for i, c in enumerate(HOT_CASES)],
)
def test_hot_path_answers_exactly_as_the_flask_views(
    app: Flask,
    client: FlaskClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
    fragment: str,
) -> None:
    """service.web.hot serves these routes in production; the Flask views are the reference."""
    hot = client.open(path, method=method, **kwargs)
    recording = app.wsgi_app
    app.wsgi_app = app.extensions[hot_path.EXTENSION].flask  # type: ignore[method-assign]
    try:
        flask_only = client.open(path, method=method, **kwargs)
    finally:
        app.wsgi_app = recording  # type: ignore[method-assign]
    assert (hot.status_code, hot.get_json()) == (flask_only.status_code, flask_only.get_json())
    assert hot.mimetype == flask_only.mimetype == "application/json"
    assert hot.headers.get("Retry-After") == flask_only.headers.get("Retry-After")


def test_unauthorized_names_the_scheme(client: FlaskClient) -> None:
    response = client.get("/titles")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_admin_api_disabled_without_a_key(redis: Any, redis_server: PrivateRedis) -> None:
    app = create_app({"redis_url": redis_server.url, "api_key": None})
    response = app.test_client().get("/titles", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401
    assert "ARTBANDIT_API_KEY" in response.get_json()["message"]


def test_max_body_follows_the_setting(redis: Any, redis_server: PrivateRedis) -> None:
    app = create_app({"redis_url": redis_server.url, "max_body_bytes": 2048})
    response = app.test_client().post("/click", json={"impression_id": "x" * 100, "pad": "y" * 3000})
    assert response.status_code == 413
    assert "2048 bytes" in response.get_json()["message"]


def test_several_errors_are_reported_together(client: FlaskClient) -> None:
    response = client.post("/impression", json={"title_id": 1, "user_id": 2, "context": {"a": "x"}})
    message = response.get_json()["message"]
    assert "title_id:" in message and "user_id:" in message and "context.a:" in message


def test_an_unexpected_exception_is_a_logged_json_500(
    redis: Any, redis_server: PrivateRedis, caplog: Any
) -> None:
    app = create_app({"redis_url": redis_server.url})

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    app.extensions["artbandit"].decider.impression = broken  # stands in for a bug in the domain layer
    response = app.test_client().post("/impression", json=imp())
    assert response.status_code == 500
    assert response.get_json() == {
        "error": "internal_error",
        "message": "an unexpected error occurred; it has been logged",
    }
    assert "boom" in caplog.text


def test_valid_impressions_and_clicks_are_served_by_the_hot_path_not_flask(
    app: Flask, client: FlaskClient
) -> None:
    hot = app.extensions[hot_path.EXTENSION]
    flask_calls: list[str] = []
    inner = hot.flask

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        flask_calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    hot.flask = counting
    served = client.post("/impression", json=imp())
    assert served.status_code == 200 and served.get_json()["fallback"] is False
    clicked = client.post("/click", json={"impression_id": served.get_json()["impression_id"]})
    assert clicked.get_json() == {"status": "recorded"}
    unknown = {"impression_id": "stranger-things~1~0123456789abcdef"}
    assert client.post("/click", json=unknown).status_code == 404
    assert flask_calls == []
    assert client.post("/impression", data="{}", content_type="text/plain").status_code == 415
    assert client.get("/healthz").status_code == 200
    assert flask_calls == ["/impression", "/healthz"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'route="/impression"' in metrics and 'route="/click"' in metrics
