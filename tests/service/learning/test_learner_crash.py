"""kill -9 the learner while events flow, restart it: after catch-up every labelled event was applied
exactly once (counters stored in the snapshot, and the policy state equals a reference that applied the
stream once)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import redis as redis_lib

from policies import state
from service.catalog import TitleConfig, build_policy, parse_title, stable_seed
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.learning.book import PolicyBook
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog, keys
from service.store.records import StreamEntries, parse_labelled

ROOT = Path(__file__).resolve().parents[3]
WINDOW = 0.3


def title(early: bool = False) -> TitleConfig:
    params = {"early_updates": early}
    return parse_title(
        "t1",
        {
            "features": ["romance", "comedy"],
            "artworks": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
            "experiment": {
                "variants": [
                    {"name": "ucb", "weight": 1, "policy": {"name": "linucb", "params": params}},
                    {"name": "greedy", "weight": 1, "policy": {"name": "epsilon_greedy", "params": params}},
                ]
            },
        },
    )


class LearnerProcess:
    def __init__(self, url: str, log: Path) -> None:
        self.env = {
            **os.environ,
            "ARTBANDIT_REDIS_URL": url,
            "ARTBANDIT_ATTRIBUTION_WINDOW": str(WINDOW),
            "ARTBANDIT_SNAPSHOT_INTERVAL": "0.05",
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "learn"], cwd=ROOT, env=self.env, stdout=err, stderr=err
            )

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        return self.proc.returncode


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("early", [False, True], ids=["deadline", "early_updates"])
def test_kill_9_loses_nothing_and_applies_nothing_twice(
    redis: redis_lib.Redis, redis_server: PrivateRedis, tmp_path: Path, early: bool
) -> None:
    """With early updates the learner also reads the decisions and clicks streams; the state after
    catch-up must still equal one application of the labelled stream (the identity at the deadline)."""
    cfg = title(early)
    catalog.save_title(redis, cfg)
    settings = Settings.load({"redis_url": redis_server.url, "attribution_window": WINDOW}, environ={})
    decider = Decider(redis, ModelCache(redis, settings), settings)
    join = RedisJoin(redis, settings)
    learner = LearnerProcess(redis_server.url, tmp_path / "learner.log")
    rng = random.Random(20240501)
    impression_ids: list[str] = []

    def produce(n: int) -> None:
        for _ in range(n):
            context = {"romance": rng.random(), "comedy": rng.random()}
            res = decider.impression("t1", f"u{rng.randrange(10_000)}", context)
            assert res.impression_id is not None
            impression_ids.append(res.impression_id)
            if res.artwork_id == "a" or rng.random() < 0.1:
                join.click(res.impression_id)
                if rng.random() < 0.2:
                    join.click(res.impression_id)  # a duplicate
        time.sleep(0.01)

    def published_since(t: float) -> bool:
        published_at = redis.hget(keys.snapshot("t1"), "published_at")
        return published_at is not None and float(published_at) > t

    try:
        for _ in range(3):
            booted = time.time()
            learner.start()
            deadline = time.monotonic() + 30
            while not published_since(booted):  # kill it only once it is working
                assert time.monotonic() < deadline, (tmp_path / "learner.log").read_text()
                produce(10)
            kill_at = time.monotonic() + rng.uniform(0.05, 0.5)
            while time.monotonic() < kill_at:
                produce(10)
            learner.kill9()
        learner.start()
        for _ in range(20):
            produce(10)
        assert learner.kills == 3

        stream = keys.labelled_stream("t1")

        def caught_up() -> bool:
            consumed = redis.hget(keys.snapshot("t1"), "consumed")
            return redis.xlen(stream) == len(impression_ids) and int(consumed or 0) >= len(impression_ids)

        wait_for(caught_up, 30, "the learner to label and apply every impression")
        assert learner.stop() == 0
    finally:
        if learner.proc is not None and learner.proc.poll() is None:
            learner.kill9()

    entries = cast(StreamEntries, redis.xrange(stream))
    labelled_ids = [fields[b"id"].decode() for _, fields in entries]
    assert sorted(labelled_ids) == sorted(impression_ids)  # the join labelled each impression once
    stored = {k.decode(): v for k, v in cast(dict[bytes, bytes], redis.hgetall(keys.snapshot("t1"))).items()}
    assert int(stored["consumed"]) == int(stored["applied"]) == len(entries)
    assert stored["pos"] == entries[-1][0]

    reference = PolicyBook(
        {("t1", v.name): build_policy(cfg, v.name, stable_seed("t1", v.name)) for v in cfg.variants}
    )
    for _, fields in entries:
        assert reference.apply(parse_labelled("t1", fields))
    if early:  # every variant learned early from a point on: the decisions stream was read
        last_decision = cast(StreamEntries, redis.xrevrange(keys.decisions_stream("t1"), count=1))[0][0]
        assert stored["dpos"] == last_decision and keys.snapshot_early_field("ucb") in stored
        last_click = cast(StreamEntries, redis.xrevrange(keys.clicks_stream("t1"), count=1))[0][0]
        assert stored["cpos"] == last_click
    for v in cfg.variants:
        # integer state (counts) exactly; float sums up to last-bit regrouping (see test_learner.py)
        meta_ref, arrays_ref = state.unpack(reference.snapshot(("t1", v.name)))
        meta, arrays = state.unpack(stored[keys.snapshot_bytes_field(v.name)])
        assert meta == meta_ref, v.name
        assert arrays.keys() == arrays_ref.keys()
        for name, ref in arrays_ref.items():
            if early and name == "updates":
                continue  # re-inversion bookkeeping: depends on how rows were batched, not a statistic
            if ref.dtype.kind == "f":
                np.testing.assert_allclose(
                    arrays[name], ref, rtol=1e-9, atol=1e-12, err_msg=f"{v.name}.{name}"
                )
            else:
                np.testing.assert_array_equal(arrays[name], ref, err_msg=f"{v.name}.{name}")
    assert "Traceback" not in (tmp_path / "learner.log").read_text()
