"""The learner: clicks change what is served; restarts and rival learners never apply an event twice;
catalog changes reach the live policies."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import numpy as np
import pytest
import redis as redis_lib

from policies import load_policy, state
from service.catalog import TitleConfig, build_policy, parse_title, stable_seed
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.learning.book import PolicyBook
from service.learning.learner import STEP_INTERVAL, Learner
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog, keys
from service.store.records import StreamEntries, parse_labelled

T0 = 1_700_000_000.0
WINDOW = 10.0
ROMANCE = {"romance": 1.0, "comedy": 0.0}


def title(title_id: str = "t1", artworks: tuple[str, ...] = ("a", "b", "c"), **extra: Any) -> TitleConfig:
    body = {"features": ["romance", "comedy"], "artworks": [{"id": a} for a in artworks], **extra}
    return parse_title(title_id, body)


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return Settings.load(
        {"redis_url": redis_server.url, "attribution_window": WINDOW, "refresh_interval": 60.0}, environ={}
    )


def serve(redis: redis_lib.Redis, settings: Settings, n: int, click_on: str, title_id: str = "t1") -> int:
    """n impressions at T0.. (a fresh worker each time); click every one that showed `click_on`."""
    decider = Decider(redis, ModelCache(redis, settings), settings)
    join = RedisJoin(redis, settings)
    clicked = 0
    for i in range(n):
        res = decider.impression(title_id, f"u{i}", ROMANCE, now=T0 + i * 0.01)
        if res.artwork_id == click_on and res.impression_id is not None:
            assert join.click(res.impression_id, now=T0 + i * 0.01 + 1).value == "recorded"
            clicked += 1
    return clicked


def drain(learner: Learner, now: float = T0 + 10 * WINDOW) -> int:
    """Sweep everything and read until nothing is left."""
    total = 0
    while n := learner.step(now=now):
        total += n
    return total


def snapshot_fields(redis: redis_lib.Redis, title_id: str = "t1") -> dict[str, bytes]:
    return {
        k.decode(): v for k, v in cast(dict[bytes, bytes], redis.hgetall(keys.snapshot(title_id))).items()
    }


def reference_book(redis: redis_lib.Redis, cfg: TitleConfig) -> PolicyBook:
    """Fresh policies that applied the whole labelled stream exactly once."""
    book = PolicyBook({(cfg.title_id, v.name): build_policy(cfg, v.name, stable_seed(cfg.title_id, v.name))
                       for v in cfg.variants})  # fmt: skip
    for _, fields in cast(StreamEntries, redis.xrange(keys.labelled_stream(cfg.title_id))):
        book.apply(parse_labelled(cfg.title_id, fields))
    return book


# A title's default variant learning deadline-only (the policy default learns early: docs/results.md)
DEADLINE_ONLY = {"policy": {"name": "linucb", "params": {"early_updates": False}}}


def assert_same_state(a: bytes, b: bytes, bookkeeping: bool = True) -> None:
    """Same policy state. Integer arrays (counts) must match exactly; float sums may differ in the last
    bits because serializing folds buffered rank-one terms into A earlier (policies/ridge.py), but one
    event more or less would move them by far more than 1e-9. `bookkeeping=False` leaves out `updates`
    (rank-one updates since the last re-inversion), which depends on how rows were batched: early
    updates batch them differently from the labelled stream."""
    meta_a, arrays_a = state.unpack(a)
    meta_b, arrays_b = state.unpack(b)
    assert meta_a == meta_b
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        if name == "updates" and not bookkeeping:
            continue
        if arrays_a[name].dtype.kind == "f":
            np.testing.assert_allclose(arrays_a[name], arrays_b[name], rtol=1e-9, atol=1e-12, err_msg=name)
        else:
            np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def test_clicks_change_what_is_served(redis: redis_lib.Redis, settings: Settings) -> None:
    catalog.save_title(redis, title())
    worker = ModelCache(redis, settings)
    cfg = worker.title("t1")
    assert cfg is not None
    policy, version = worker.policy(cfg, "default")
    before = policy.probabilities(ROMANCE)["a"]
    assert version == 0

    clicked = serve(redis, settings, 300, click_on="a")
    learner = Learner(redis, settings)
    assert drain(learner) == 300  # every impression labelled once: clicks and expiries
    assert learner.applied == 300 and learner.publish() == 1

    worker.refresh()
    policy, version = worker.policy(cfg, "default")
    assert version == 1 and worker.swaps == 1
    after = policy.probabilities(ROMANCE)["a"]
    assert clicked > 50
    assert before < 0.5 < 0.9 < after
    decider = Decider(redis, worker, settings)
    served = [decider.impression("t1", f"v{i}", ROMANCE) for i in range(200)]
    assert {s.model_version for s in served} == {1}
    assert sum(s.artwork_id == "a" for s in served) > 150  # P(a) > 0.9: fails with probability < 1e-6


def test_restart_resumes_after_the_snapshot_exactly_once(redis: redis_lib.Redis, settings: Settings) -> None:
    cfg = title()
    catalog.save_title(redis, cfg)
    first = Learner(redis, settings)
    serve(redis, settings, 100, click_on="b")
    drain(first)
    first.publish()
    serve(redis, settings, 100, click_on="c")
    drain(first, now=T0 + 20 * WINDOW)  # applied in memory, never published: then the process dies

    second = Learner(redis, settings)
    drain(second, now=T0 + 20 * WINDOW)
    second.publish()
    assert second.applied == 100  # only what the snapshot did not include
    stored = snapshot_fields(redis)
    assert int(stored["consumed"]) == int(stored["applied"]) == redis.xlen(keys.labelled_stream("t1")) == 200
    assert_same_state(
        stored[keys.snapshot_bytes_field("default")], reference_book(redis, cfg).snapshot(("t1", "default"))
    )


@pytest.mark.parametrize("early", [False, True], ids=["deadline", "early_updates"])
def test_a_second_learner_on_the_same_title_cannot_double_apply(
    redis: redis_lib.Redis, settings: Settings, early: bool
) -> None:
    cfg = title() if early else title(**DEADLINE_ONLY)
    catalog.save_title(redis, cfg)
    a, b = Learner(redis, settings), Learner(redis, settings)
    a.step(now=T0)
    b.step(now=T0)
    serve(redis, settings, 60, click_on="a")
    drain(a)
    drain(b)
    assert a.publish() == 1
    assert b.publish() == 0  # its position no longer matches: it reloads instead of writing
    drain(b)
    assert b.publish() == 1
    stored = snapshot_fields(redis)
    assert int(stored["consumed"]) == redis.xlen(keys.labelled_stream("t1")) == 60
    assert (b.early.labels_taken == 60) is early  # both learned early from T0, before every decision
    assert_same_state(
        stored[keys.snapshot_bytes_field("default")],
        reference_book(redis, cfg).snapshot(("t1", "default")),
        bookkeeping=not early,
    )


def test_catalog_changes_reach_the_policies(redis: redis_lib.Redis, settings: Settings) -> None:
    catalog.save_title(redis, title())
    learner = Learner(redis, settings)
    learner.step(now=T0)
    learner.publish()
    assert learner.titles == ["t1"]

    # a new title
    catalog.save_title(redis, title("t2"))
    learner.step(now=T0)
    assert learner.titles == ["t1", "t2"]

    # an artwork added and one removed: same live policy, arms follow, version moves
    serve(redis, settings, 60, click_on="a")
    drain(learner)
    learner.publish()
    live = learner.book.policies[("t1", "default")]
    assert live.probabilities(ROMANCE)["a"] > 0.5
    catalog.save_title(redis, title(artworks=("a", "c")))
    learner.step(now=T0)
    assert learner.book.policies[("t1", "default")] is live  # still the learned policy
    assert live.arms == ["a", "c"] and live.probabilities(ROMANCE)["a"] > 0.5
    catalog.save_title(redis, title(artworks=("a", "c", "d")))
    learner.step(now=T0)
    assert learner.book.policies[("t1", "default")] is live
    assert live.arms == ["a", "c", "d"]  # d starts without data (and is explored)
    learner.publish()
    assert snapshot_fields(redis)[keys.snapshot_version_field("default")] == b"3"

    # variants added and removed
    exp = {"variants": [{"name": "default", "weight": 1}, {"name": "explore", "weight": 1,
                                                         "policy": {"name": "uniform"}}]}  # fmt: skip
    catalog.save_title(redis, title(artworks=("a", "c", "d"), experiment=exp))
    learner.step(now=T0)
    learner.publish()
    fields = snapshot_fields(redis)
    assert keys.snapshot_version_field("explore") in fields
    catalog.save_title(redis, title(artworks=("a", "c", "d"), policy={"name": "uniform"}))
    learner.step(now=T0)
    learner.publish()
    fields = snapshot_fields(redis)
    assert keys.snapshot_version_field("explore") not in fields
    assert keys.snapshot_bytes_field("explore") not in fields
    # the spec changed (linucb -> uniform): a fresh policy, still a newer version for the workers
    assert fields[keys.snapshot_version_field("default")] == b"4"
    fresh = load_policy(fields[keys.snapshot_bytes_field("default")])
    assert fresh.name == "uniform"

    # a title removed: the learner stops following it
    catalog.delete_title(redis, "t2")
    learner.step(now=T0)
    assert learner.titles == ["t1"]


def test_learner_restricted_to_its_titles(redis: redis_lib.Redis, settings: Settings) -> None:
    catalog.save_title(redis, title("t1"))
    catalog.save_title(redis, title("t2"))
    learner = Learner(redis, settings, titles=["t2", "t3"])
    learner.step(now=T0)
    assert learner.titles == ["t2"]


class _CountingLearner(Learner):
    """A learner whose steps always find work; `behind` says whether they also leave some."""

    def __init__(self, redis: redis_lib.Redis, settings: Settings, behind: bool) -> None:
        super().__init__(redis, settings)
        self.steps = 0
        self._always_behind = behind

    def step(self, now: float | None = None, block_ms: int = 0) -> int:
        self.steps += 1
        self.sync_catalog()
        self.behind = self._always_behind
        return 1


@pytest.mark.parametrize("behind", [False, True])
def test_run_paces_steps_unless_behind(redis: redis_lib.Redis, settings: Settings, behind: bool) -> None:
    """Events that trickle in are worked on every STEP_INTERVAL, a few per step would cost four round
    trips each; a backlog is worked off without pausing."""
    catalog.save_title(redis, title("t1"))
    learner = _CountingLearner(redis, settings, behind)
    stop = threading.Event()
    thread = threading.Thread(target=learner.run, args=(stop,))
    seconds = 5 * STEP_INTERVAL
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(timeout=5)
    paced_at_most = seconds / STEP_INTERVAL + 2
    if behind:
        assert learner.steps > 10 * paced_at_most
    else:
        assert 2 <= learner.steps <= paced_at_most


# Every test here runs on one Redis and on a 3-master Redis Cluster (tests/conftest.py).
@pytest.fixture()
def redis_server(store_server: Any) -> Any:
    return store_server


@pytest.fixture()
def redis(store: Any) -> Any:
    return store
