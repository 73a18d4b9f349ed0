"""Shared fixtures: a private redis-server for the whole test session, flushed before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib

from service.devstack.redis_server import PrivateRedis


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


@pytest.fixture()
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts commands (or pipelines) sent to Redis from now on: one entry per round trip."""
    sent: list[int] = []
    original = redis_lib.connection.Connection.send_packed_command

    def counting(self: redis_lib.connection.Connection, command: object, check_health: bool = True) -> None:
        sent.append(1)
        original(self, command, check_health)

    monkeypatch.setattr(redis_lib.connection.Connection, "send_packed_command", counting)
    return sent
