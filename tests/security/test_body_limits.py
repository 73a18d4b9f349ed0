"""Request bodies are bounded: past `max_body_bytes` every body-taking route answers a JSON 413 before
parsing — with a Content-Length, and also when the body comes chunked (no length announced)."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.devstack.redis_server import PrivateRedis
from tests.security.conftest import ADMIN, API_KEY
from tests.security.live_server import serve

LIMIT = 2048
ROUTES = [("POST", "/impression"), ("POST", "/click"), ("PUT", "/titles/t1")]


@pytest.fixture()
def small_app(redis: Any, redis_server: PrivateRedis) -> Flask:
    return create_app({"redis_url": redis_server.url, "api_key": API_KEY, "max_body_bytes": LIMIT})


def padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    head = b'{"pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_body_over_the_limit_is_413(small_app: Flask, method: str, path: str) -> None:
    client: FlaskClient = small_app.test_client()
    response = client.open(path, method=method, data=padded(LIMIT + 1), content_type="application/json",
                           headers=ADMIN)  # fmt: skip
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "payload_too_large" and str(LIMIT) in body["message"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_body_at_the_limit_is_read(small_app: Flask, method: str, path: str) -> None:
    client: FlaskClient = small_app.test_client()
    response = client.open(path, method=method, data=padded(LIMIT), content_type="application/json",
                           headers=ADMIN)  # fmt: skip
    assert response.status_code == 400  # parsed, and rejected for its content (the unknown field "pad")


def test_the_default_limit_is_64_kib(client: FlaskClient) -> None:
    assert (
        client.post("/click", data=padded(64 * 1024 + 1), content_type="application/json").status_code == 413
    )


def chunked_post(port: int, path: str, chunks: list[bytes]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=iter(chunks), headers={"Content-Type": "application/json"},
                     encode_chunked=True)  # fmt: skip
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def chunks(body: bytes, size: int = 512) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("size", [LIMIT + 1, 4 * LIMIT])
@pytest.mark.parametrize("path", ["/impression", "/click"])
def test_a_chunked_body_over_the_limit_is_413(small_app: Flask, path: str, size: int) -> None:
    # werkzeug alone would cut such a body at the limit and parse the truncated rest
    with serve(small_app) as port:
        status, answer = chunked_post(port, path, chunks(padded(size)))
    assert status == 413, answer
    assert answer["error"] == "payload_too_large"


def test_a_chunked_body_over_the_limit_is_not_processed_truncated(small_app: Flask) -> None:
    # valid JSON within the limit, then more: refused whole, not acted on after a cut
    body = b'{"impression_id": "t1~1~0000000000000000"}' + b" " * LIMIT
    with serve(small_app) as port:
        status, answer = chunked_post(port, "/click", chunks(body))
    assert status == 413, answer


def test_a_chunked_body_at_the_limit_is_read(small_app: Flask) -> None:
    with serve(small_app) as port:
        status, answer = chunked_post(port, "/click", chunks(padded(LIMIT)))
    assert status == 400 and "pad" in answer["message"], answer


def test_too_many_context_features_is_a_400_not_a_crash(client: FlaskClient) -> None:
    context = {f"f{i}": 0.5 for i in range(257)}
    body = {"title_id": "t1", "user_id": "u", "context": context}
    response = client.post("/impression", json=body)
    assert response.status_code == 400
    assert "context" in response.get_json()["message"]
