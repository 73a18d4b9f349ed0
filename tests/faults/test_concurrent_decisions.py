"""A gunicorn gthread worker serves several requests at once with the same cached policy objects. Each
decision must be the one the policy makes for *that* viewer's context, whatever the other threads do.

Found by the HTTP soak: LinUCB scores a context through a scratch buffer held by the policy
(`policies/ridge.py`, `RidgeArms.mean_var_row`), so two threads deciding at once read each other's
numbers. Before 493ed33 that showed as rare `400 math domain error` answers (a negative variance); since
the clamp it is silent: about 5% of concurrent LinUCB decisions were scored with another viewer's context.
Fixed in `service/serving/decider.py`: a worker's `Decider` decides under a lock.
The decision record logs the probabilities actually used, so here each logged vector is compared with the
one the same policy gives that context alone.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import redis as redis_lib

from service.catalog import parse_title
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog
from service.store.records import DecisionRecord

THREADS = 4
CONTEXTS = 1500
ROUNDS = 2
# policies whose probabilities are a function of (state, context); Thompson sampling draws them
POLICIES = ["linucb", "epsilon_greedy", "vw"]


def context(row: np.ndarray) -> dict[str, float]:
    return {"romance": float(row[0]), "horror": float(row[1])}


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_concurrent_decisions_use_their_own_context(
    redis: redis_lib.Redis, redis_server: PrivateRedis, policy: str
) -> None:
    cfg = parse_title(
        "t1",
        {"features": ["romance", "horror"], "artworks": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
         "policy": {"name": policy}},
    )  # fmt: skip
    catalog.save_title(redis, cfg)
    settings = Settings.load({"redis_url": redis_server.url, "redis_timeout": 5.0}, environ={})
    decider = Decider(redis, ModelCache(redis, settings), settings)
    served, _ = decider.cache.policy(cfg, "default")
    rng = np.random.default_rng(3)
    for _ in range(300):  # teach it something, so contexts score differently
        x = context(rng.random(2))
        decision = served.decide(x)
        served.learn(x, decision.arm, float(rng.random() < 0.3), decision.propensity)
    rows = np.random.default_rng(5).random((CONTEXTS, 2))
    expected = [served.decide(context(row)).probabilities for row in rows]

    logged: dict[str, DecisionRecord] = {}

    def log(record: DecisionRecord, ref: object = None, **_: object) -> None:  # the write is not under test
        logged[record.event_id] = record

    decider.join.impress = log  # type: ignore[method-assign]
    wrong: list[tuple[int, Any, Any]] = []

    def decide(thread: int) -> None:
        for _ in range(ROUNDS):
            for i, row in enumerate(rows):
                result = decider.impression("t1", f"u{thread}-{i}", context(row))
                assert result.impression_id is not None
                record = logged[result.impression_id]
                got = dict(zip(record.artworks, record.probabilities, strict=True))
                if any(abs(got[a] - p) > 1e-9 for a, p in expected[i].items()):
                    wrong.append((i, got, expected[i]))

    threads = [threading.Thread(target=decide, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(logged) == THREADS * ROUNDS * CONTEXTS
    assert wrong == [], f"{len(wrong)} of {len(logged)} decisions used other numbers, e.g. {wrong[:2]}"
