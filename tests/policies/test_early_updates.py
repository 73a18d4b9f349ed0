"""Early updates: decisions enter when made, rewards when they arrive; once every outcome is known the
statistics equal deadline-only learning of the same events (to 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest

from policies import create_policy, load_policy

ARMS = [f"a{i}" for i in range(5)]
FEATURES = [f"f{i}" for i in range(6)]


def _events(n: int = 3000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.full(len(FEATURES), 0.3), n)
    arms = rng.integers(0, len(ARMS), n)
    rewards = (rng.random(n) < 0.2).astype(float)
    # click times: a log-normal delay after the decision (decision i at time i)
    click_at = np.arange(n) + rng.lognormal(np.log(40.0), 1.5, n)
    return x, arms, rewards, click_at


def _stats(policy: object) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in policy._state_arrays().items()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["linucb", "linear_ts"])
@pytest.mark.parametrize("refactor_every", [1000, 7])
def test_ridge_early_equals_deadline_once_windows_closed(name: str, refactor_every: int) -> None:
    x, arms, rewards, click_at = _events()
    window, n = 200.0, len(arms)
    deadline = create_policy(name, ARMS, FEATURES, 1, refactor_every=refactor_every, early_updates=False)
    early = create_policy(name, ARMS, FEATURES, 1, refactor_every=refactor_every, early_updates=True)
    props = np.full(n, 0.2)
    # deadline-only: each event at decision time + window, in blocks of 50
    for a in range(0, n, 50):
        deadline.learn_batch(x[a : a + 50], arms[a : a + 50], rewards[a : a + 50], props[a : a + 50])
    # early: decisions in blocks of 37 as they are made, clicks (rewards) in click-time order, one by one
    # and in blocks, interleaved with decisions
    order = np.argsort(click_at, kind="stable")
    clicks = [i for i in order.tolist() if rewards[i] > 0]
    c = 0
    for a in range(0, n, 37):
        early.learn_decided_batch(x[a : a + 37], arms[a : a + 37])
        upto = a + 37
        due = []
        while c < len(clicks) and click_at[clicks[c]] < upto and clicks[c] < upto:
            due.append(clicks[c])
            c += 1
        if due:
            early.learn_reward_batch(x[due], arms[due], rewards[due])
    rest = clicks[c:]
    early.learn_reward_batch(x[rest], arms[rest], rewards[rest])
    got, want = _stats(early), _stats(deadline)
    for key in ("A", "b", "A_inv", "theta"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-9, err_msg=key)
    assert window  # the window only orders the deadline path; sums do not depend on order


def test_ridge_early_before_the_clicks_arrive_counts_pending_as_zero() -> None:
    x, arms, rewards, _ = _events(400)
    early = create_policy("linucb", ARMS, FEATURES, 1, early_updates=True)
    zero = create_policy("linucb", ARMS, FEATURES, 1, early_updates=False)
    early.learn_decided_batch(x, arms)
    zero.learn_batch(x, arms, np.zeros(len(arms)), np.full(len(arms), 0.2))
    for key in ("A", "b", "theta"):
        np.testing.assert_allclose(_stats(early)[key], _stats(zero)[key], rtol=1e-9, atol=1e-12)


def test_epsilon_greedy_early_equals_deadline() -> None:
    x, arms, rewards, _ = _events(2000)
    deadline = create_policy("epsilon_greedy", ARMS, FEATURES, 1, early_updates=False)
    early = create_policy("epsilon_greedy", ARMS, FEATURES, 1, early_updates=True)
    deadline.learn_batch(x, arms, rewards, np.full(len(arms), 0.2))
    early.learn_decided_batch(x, arms)
    early.learn_reward_batch(x[::-1], arms[::-1], rewards[::-1])
    assert _stats(early)["counts"].tolist() == _stats(deadline)["counts"].tolist()
    assert _stats(early)["sums"].tolist() == _stats(deadline)["sums"].tolist()
    assert early.epsilon_now == deadline.epsilon_now


def test_early_updates_state_round_trips() -> None:
    x, arms, rewards, _ = _events(300)
    early = create_policy("linucb", ARMS, FEATURES, 1, early_updates=True)
    early.learn_decided_batch(x, arms)
    again = load_policy(early.to_bytes())
    assert again.early_updates
    again.learn_reward_batch(x, arms, rewards)
    early.learn_reward_batch(x, arms, rewards)
    assert again.probabilities({f: 0.2 for f in FEATURES}) == early.probabilities({f: 0.2 for f in FEATURES})


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("linucb", {"early_updates": 1}, 'early_updates must be true, false or "auto"'),
        ("linucb", {"early_updates": True, "forgetting": 0.99}, "early_updates needs forgetting = 1"),
        ("linear_ts", {"early_updates": "yes"}, 'early_updates must be true, false or "auto"'),
        ("epsilon_greedy", {"early_updates": 0}, 'early_updates must be true, false or "auto"'),
        ("uniform", {"early_updates": True}, "early_updates"),
    ],
)
def test_early_updates_settings_are_validated(name: str, params: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        create_policy(name, ARMS, FEATURES, 1, **params)


@pytest.mark.parametrize(
    ("name", "params", "resolved"),
    [
        ("linucb", {}, True),
        ("linucb", {"early_updates": None}, True),
        ("linucb", {"early_updates": "auto"}, True),
        ("linucb", {"forgetting": 0.99}, False),
        ("linucb", {"forgetting": 0.99, "early_updates": "auto"}, False),
        ("linucb", {"early_updates": False}, False),
        ("linear_ts", {}, True),
        ("linear_ts", {"forgetting": 0.5}, False),
        ("epsilon_greedy", {}, True),
        ("epsilon_greedy", {"early_updates": False}, False),
        ("uniform", {}, False),
        ("vw", {}, False),
    ],
)
def test_the_default_learns_early_wherever_it_is_valid(name: str, params: dict, resolved: bool) -> None:
    policy = create_policy(name, ARMS, FEATURES, 1, **params)
    assert policy.early_updates is resolved
    # snapshots record the resolved value, so a later default cannot change how they learned
    assert load_policy(policy.to_bytes()).early_updates is resolved
    if hasattr(policy.settings, "early_updates"):
        assert policy.settings.to_json()["early_updates"] is resolved


@pytest.mark.parametrize("name", ["linucb", "linear_ts", "epsilon_greedy"])
def test_switching_early_updates_on_keeps_the_statistics(name: str) -> None:
    """A policy that learned the first events deadline-only, then switched on (an upgrade whose default
    turned early updates on), equals deadline-only learning of all events once their outcomes are in."""
    x, arms, rewards, _ = _events(1500)
    props = np.full(len(arms), 0.2)
    deadline = create_policy(name, ARMS, FEATURES, 1, early_updates=False)
    deadline.learn_batch(x, arms, rewards, props)
    switched = create_policy(name, ARMS, FEATURES, 1, early_updates=False)
    switched.learn_batch(x[:600], arms[:600], rewards[:600], props[:600])
    switched = load_policy(switched.to_bytes())  # as the learner loads an old snapshot
    assert not switched.early_updates
    switched.start_early_updates()
    assert switched.early_updates and load_policy(switched.to_bytes()).early_updates
    switched.learn_decided_batch(x[600:], arms[600:])
    switched.learn_reward_batch(x[600:], arms[600:], rewards[600:])
    got, want = _stats(switched), _stats(deadline)
    assert got.keys() == want.keys()
    for key in got:
        if key != "updates":  # rank-one bookkeeping depends on batching (see test_learner_early.py)
            np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-9, err_msg=key)


@pytest.mark.parametrize(("name", "params"), [("linucb", {"forgetting": 0.9}), ("uniform", {}), ("vw", {})])
def test_switching_early_updates_on_is_refused_where_invalid(name: str, params: dict) -> None:
    policy = create_policy(name, ARMS, FEATURES, 1, **params)
    with pytest.raises(ValueError, match="early_updates needs forgetting = 1|has no early updates"):
        policy.start_early_updates()
    assert not policy.early_updates


def test_a_deadline_policy_refuses_early_calls() -> None:
    policy = create_policy("linucb", ARMS, FEATURES, 1, early_updates=False)
    with pytest.raises(ValueError, match="not set up for early updates"):
        policy.learn_decided_batch(np.zeros((1, len(FEATURES))), np.array([0]))
