"""Fixtures of the security tests: the app on the session's private Redis with a distinctive admin key."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.devstack.redis_server import PrivateRedis
from service.web import auth

API_KEY = "sec-admin-7f3a9c1e2b5d4e6f8a0b"  # distinctive, so a leak is unmistakable
ADMIN = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture()
def app(redis: Any, redis_server: PrivateRedis) -> Iterator[Flask]:
    app = create_app({"redis_url": redis_server.url, "api_key": API_KEY, "redis_timeout": 2.0})
    yield app
    app.extensions["artbandit"].close()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def compare_digest_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every (given, expected) pair the key checks of service/web/auth.py compare, in order (they still
    compare with the real `hmac.compare_digest`)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    return calls
