"""Over real HTTP (a threaded werkzeug server), 100 simultaneous clicks on one impression: exactly one
is recorded, every other one is a duplicate."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from service.app import create_app
from service.devstack.redis_server import PrivateRedis

KEY = "concurrency-key"
TITLE = {
    "features": ["romance"],
    "artworks": [{"id": "a"}, {"id": "b"}],
    "policy": {"name": "uniform"},
}
CLICKERS = 100


def post(
    port: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None, method: str = "POST"
) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture()
def server(redis: Any, redis_server: PrivateRedis) -> Iterator[BaseWSGIServer]:
    # a patient Redis timeout: this test is about the join's atomicity, not about a loaded machine's latency
    app = create_app({"redis_url": redis_server.url, "api_key": KEY, "redis_timeout": 5.0})
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    thread.join(10)
    app.extensions["artbandit"].close()


def test_concurrent_duplicate_clicks_record_exactly_once(server: BaseWSGIServer) -> None:
    port = server.server_port
    status, _ = post(port, "/titles/race", TITLE, {"Authorization": f"Bearer {KEY}"}, method="PUT")
    assert status == 200
    status, imp = post(port, "/impression", {"title_id": "race", "user_id": "u", "context": {"romance": 1.0}})
    assert status == 200 and imp["fallback"] is False

    barrier = threading.Barrier(CLICKERS)
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def click() -> None:
        barrier.wait()
        answer = post(port, "/click", {"impression_id": imp["impression_id"]})
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=click) for _ in range(CLICKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(results) == CLICKERS
    outcomes = Counter((status, body.get("status", body.get("error"))) for status, body in results)
    assert outcomes == {(200, "recorded"): 1, (200, "duplicate"): CLICKERS - 1}
