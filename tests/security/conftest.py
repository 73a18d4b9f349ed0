"""Fixtures of the security tests: the app on the session's private Redis with a distinctive admin key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.devstack.redis_server import PrivateRedis

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
