"""Rotating keys with no request refused: a client keeps calling (impression, click, admin read) over real
HTTP while two replicas of the service are rolled through the three steps of docs/deploy.md ("Rotating
keys"): old key only -> old and new -> new only, the client switching its keys between the second and
third steps. Every request of the run must succeed; afterwards the old keys are refused."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask

from service.app import create_app
from service.devstack.redis_server import PrivateRedis
from tests.faults.stack import http_json
from tests.security.live_server import serve

OLD_CLIENT, NEW_CLIENT = "rot-client-old-5e2a9c", "rot-client-new-8b1d4f"
OLD_ADMIN, NEW_ADMIN = "rot-admin-old-3f7c1a", "rot-admin-new-6d0e2b"
TITLE = {"features": ["romance"], "artworks": [{"id": "a"}, {"id": "b"}], "policy": {"name": "uniform"}}
# the replicas' settings at each step: (api_key, api_keys, client_keys), as an operator sets the env
STEPS = {
    "old": (OLD_ADMIN, "", OLD_CLIENT),
    "both": (OLD_ADMIN, NEW_ADMIN, f"{OLD_CLIENT},{NEW_CLIENT}"),
    "new": (NEW_ADMIN, "", NEW_CLIENT),
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Replicas:
    """A load balancer over two replicas (round robin); `roll` restarts one replica with new settings,
    as a rolling deployment does: the balancer sends new requests to the new process."""

    def __init__(self, make: Callable[[str], Flask], step: str) -> None:
        self._make = make
        self.apps = [make(step), make(step)]
        self._next = itertools.count()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        app = self.apps[next(self._next) % 2]
        return app(environ, start_response)

    def roll(self, step: str) -> None:
        for i in range(2):
            old, self.apps[i] = self.apps[i], self._make(step)
            time.sleep(0.05)  # the old process drains its requests in flight, then exits
            old.extensions["artbandit"].close()

    def close(self) -> None:
        for app in self.apps:
            app.extensions["artbandit"].close()


@pytest.fixture()
def replicas(redis: redis_lib.Redis, redis_server: PrivateRedis) -> Iterator[tuple[Replicas, int]]:
    def make(step: str) -> Flask:
        api_key, api_keys, client_keys = STEPS[step]
        return create_app({
            "redis_url": redis_server.url, "redis_timeout": 2.0,
            "api_key": api_key, "api_keys": api_keys, "client_keys": client_keys,
        })  # fmt: skip

    lb = Replicas(make, "old")
    with serve(lb) as port:
        status, body = http_json(port, "PUT", "/titles/t1", TITLE, {"Authorization": f"Bearer {OLD_ADMIN}"})
        assert status == 200, body
        yield lb, port
    lb.close()


class Client:
    """Calls in a loop with its current keys; records every status that was not the expected one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.client_key, self.admin_key = OLD_CLIENT, OLD_ADMIN
        self.calls = 0
        self.refused: list[tuple[str, int, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            data = {"Authorization": f"Bearer {self.client_key}"}
            admin = {"Authorization": f"Bearer {self.admin_key}"}
            body = {"title_id": "t1", "user_id": f"u{n}", "context": {"romance": 1.0}}
            status, shown = http_json(self.port, "POST", "/impression", body, data)
            self._note("impression", status, shown)
            if status == 200:
                click = {"impression_id": shown["impression_id"]}
                self._note("click", *http_json(self.port, "POST", "/click", click, data))
            self._note("titles", *http_json(self.port, "GET", "/titles/t1", headers=admin))

    def _note(self, what: str, status: int, body: Any) -> None:
        self.calls += 1
        if status != 200:
            self.refused.append((what, status, body))

    def wait_calls(self, more: int) -> None:
        target = self.calls + more
        deadline = time.monotonic() + 30
        while self.calls < target and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.calls >= target, "the client stalled"


def test_rotation_refuses_no_request(replicas: tuple[Replicas, int]) -> None:
    lb, port = replicas
    client = Client(port)
    thread = threading.Thread(target=client.run, name="rotating-client")
    thread.start()
    try:
        client.wait_calls(30)
        lb.roll("both")  # 1. every replica accepts the old and the new keys
        client.wait_calls(30)
        client.client_key, client.admin_key = NEW_CLIENT, NEW_ADMIN  # 2. clients switch, mid-run
        client.wait_calls(30)
        lb.roll("new")  # 3. the old keys are removed
        client.wait_calls(30)
    finally:
        client.stop.set()
        thread.join(30)
    assert client.refused == []
    assert client.calls >= 120

    # afterwards, on both replicas: the old keys are refused, the new ones accepted
    body = {"title_id": "t1", "user_id": "x", "context": {"romance": 1.0}}
    for _ in range(2):
        for client_key, admin_key, status in ((OLD_CLIENT, OLD_ADMIN, 403), (NEW_CLIENT, NEW_ADMIN, 200)):
            assert http_json(port, "POST", "/impression", body, bearer(client_key))[0] == status
            assert http_json(port, "GET", "/titles", headers=bearer(admin_key))[0] == status


def test_in_the_middle_step_both_keys_are_accepted(replicas: tuple[Replicas, int]) -> None:
    lb, port = replicas
    body = {"title_id": "t1", "user_id": "x", "context": {"romance": 1.0}}
    new = {"Authorization": f"Bearer {NEW_CLIENT}"}
    assert http_json(port, "POST", "/impression", body, new)[0] == 403  # before: only the old key
    lb.roll("both")
    for _ in range(2):  # each replica
        for key in (OLD_CLIENT, NEW_CLIENT):
            assert http_json(port, "POST", "/impression", body, {"Authorization": f"Bearer {key}"})[0] == 200
        for key in (OLD_ADMIN, NEW_ADMIN):
            assert http_json(port, "GET", "/titles", headers={"Authorization": f"Bearer {key}"})[0] == 200
