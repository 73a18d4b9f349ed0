"""What LinUCB and linear Thompson sampling share through `RidgePolicy`, tested once for both."""

from __future__ import annotations

import numpy as np
import pytest

from policies import create_policy


@pytest.mark.parametrize(
    ("name", "n_features", "seed"),
    [("linucb", 16, 5), ("linear_ts", 3, 9)],  # each policy's own test setup
)
def test_new_arm_is_explored_not_starved(name: str, n_features: int, seed: int) -> None:
    features = [f"f{i}" for i in range(n_features)]
    p = create_policy(name, arms=["a", "b", "c"], features=features, seed=seed)
    rng = np.random.default_rng(5)
    ctx = [dict(zip(features, row, strict=True)) for row in rng.random((700, n_features)).tolist()]
    for c in ctx[:500]:
        d = p.decide(c)
        p.learn(c, d.arm, float(rng.random() < 0.2), d.propensity)
    p.add_arm("new")
    chosen = 0
    for c in ctx[500:]:
        d = p.decide(c)
        chosen += d.arm == "new"
        p.learn(c, d.arm, float(rng.random() < 0.2), d.propensity)
    assert chosen >= 20  # far above the floor's 200 · 0.0125 = 2.5
