"""Shared fixtures: a private redis-server for the whole test session, flushed before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib

from service.redis_server import PrivateRedis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture()
def redis(redis_server: PrivateRedis) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()
