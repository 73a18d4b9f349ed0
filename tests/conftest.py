"""Shared fixtures: a private redis-server for the whole test session, flushed before each test; a private
Redis Cluster (3 masters + 3 replicas) started the first time a test asks for it; and `store_server` /
`store`, parametrized over both, for the end-to-end tests that must hold on one Redis and on a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest
import redis as redis_lib

from service.devstack.redis_cluster import PrivateCluster
from service.devstack.redis_server import PrivateRedis
from service.store.clients import Client, connect


class HasUrl(Protocol):
    @property
    def url(self) -> str: ...


@pytest.fixture(scope="session")
def single_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(single_redis: PrivateRedis) -> PrivateRedis:
    """The session's one redis-server (a module whose tests run on a cluster too overrides this name)."""
    return single_redis


@pytest.fixture()
def redis(redis_server: PrivateRedis) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[PrivateCluster]:
    """3 masters + 3 replicas on free ports (and free bus ports), for the whole session."""
    cluster = PrivateCluster(masters=3, replicas=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["node", "cluster"])
def store_server(request: pytest.FixtureRequest) -> HasUrl:
    """The Redis under test: one node, or a cluster named by one of its nodes' URL."""
    name = "single_redis" if request.param == "node" else "redis_cluster"
    server: HasUrl = request.getfixturevalue(name)
    return server


@pytest.fixture()
def store(store_server: HasUrl) -> Iterator[Client]:
    """A client of `store_server` (a RedisCluster on the cluster), every database flushed first."""
    client = connect(store_server.url)
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
