"""The served learner with early updates: decisions enter when made and accepted clicks when they arrive,
so what is served moves before the attribution window closes; once it has closed, the published state
equals deadline-only learning of the labelled stream (1e-9), across restarts."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import orjson
import pytest
import redis as redis_lib

from policies import base as policies_base
from policies import epsilon_greedy as policies_epsilon_greedy
from policies import load_policy, state
from policies import ridge as policies_ridge
from service.catalog import TitleConfig, build_policy, spec_fingerprint
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.learning.learner import Learner
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog, keys
from tests.service.learning.test_learner import (
    ROMANCE,
    T0,
    WINDOW,
    drain,
    reference_book,
    snapshot_fields,
    title,
)


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return Settings.load(
        {"redis_url": redis_server.url, "attribution_window": WINDOW, "refresh_interval": 60.0}, environ={}
    )


DEADLINE_ONLY_POLICY = {"name": "linucb", "params": {"early_updates": False}}


def early_title(**extra: Any) -> TitleConfig:
    return title(
        experiment={
            "variants": [
                {"name": "ucb", "weight": 1, "policy": {"name": "linucb", "params": {"early_updates": True}}},
                {
                    "name": "eg",
                    "weight": 1,
                    "policy": {"name": "epsilon_greedy", "params": {"early_updates": True}},
                },
                {"name": "late", "weight": 1, "policy": DEADLINE_ONLY_POLICY},
            ]
        },
        **extra,
    )


EARLY = {"early_updates": True}


def serve(redis: redis_lib.Redis, settings: Settings, start: int, n: int, click_on: str) -> int:
    """n impressions from T0 + start/100 s, 0.01 s apart; a click 1 s later on each one showing `click_on`."""
    decider = Decider(redis, ModelCache(redis, settings), settings)
    join = RedisJoin(redis, settings)
    clicked = 0
    for i in range(start, start + n):
        res = decider.impression("t1", f"u{i}", ROMANCE, now=T0 + i * 0.01)
        if res.artwork_id == click_on and res.impression_id is not None:
            assert join.click(res.impression_id, now=T0 + i * 0.01 + 1).value == "recorded"
            clicked += 1
    return clicked


def arrays(data: bytes) -> dict[str, np.ndarray]:
    return state.unpack(data)[1]


def assert_same_statistics(got: bytes, want: bytes) -> None:
    """Equal learned statistics (1e-9). `updates` (rank-one updates since the last re-inversion) is
    rounding bookkeeping that depends on how rows were batched, so it is not compared."""
    meta_got, a = state.unpack(got)
    meta_want, b = state.unpack(want)
    assert {k: v for k, v in meta_got.items() if k != "settings"} == {
        k: v for k, v in meta_want.items() if k != "settings"
    }
    for name in b:
        if name == "updates":
            continue
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-9, err_msg=name)


def assert_equal_to_deadline_learning(
    redis: redis_lib.Redis, cfg: TitleConfig, stored: dict[str, bytes]
) -> None:
    """The published statistics of the three variants of `early_title` / `default_title` equal fresh
    policies that learned the whole labelled stream at the deadline (`reference_book`), to 1e-9."""
    reference = reference_book(redis, cfg)
    for variant in ("ucb", "eg", "late"):
        assert_same_statistics(
            stored[keys.snapshot_bytes_field(variant)], reference.snapshot((cfg.title_id, variant))
        )


def test_early_updates_learn_before_the_deadline_and_equal_deadline_learning_after(
    redis: redis_lib.Redis,
    settings: Settings,
) -> None:
    cfg = early_title()
    catalog.save_title(redis, cfg)
    learner = Learner(redis, settings)
    learner.step(now=T0)  # the early policies start taking decisions from T0
    clicked = serve(redis, settings, 0, 600, click_on="a")
    assert clicked > 50

    # 2 s after the last click, 8 s before the first deadline: nothing is labelled yet...
    assert learner.step(now=T0 + 8) == 0
    assert learner.publish() == 1
    stored = snapshot_fields(redis)
    assert redis.xlen(keys.labelled_stream("t1")) == 0
    # ...but the early variants have every decision and every click in; the deadline variant has nothing
    ucb = load_policy(stored[keys.snapshot_bytes_field("ucb")])
    eg = arrays(stored[keys.snapshot_bytes_field("eg")])
    late = arrays(stored[keys.snapshot_bytes_field("late")])
    decisions = [d for _, d in cast(list, redis.xrange(keys.decisions_stream("t1")))]
    per_variant = {
        v: sum(f'"variant":"{v}"'.encode() in d[b"json"] for d in decisions) for v in ("ucb", "eg")
    }
    assert eg["counts"].sum() == per_variant["eg"] and eg["sums"].sum() > 0
    assert np.trace(arrays(stored[keys.snapshot_bytes_field("ucb")])["A"].sum(axis=0)) > per_variant["ucb"]
    np.testing.assert_array_equal(late["b"], 0.0)
    assert ucb.probabilities(ROMANCE)["a"] > 0.9  # served before any window closed
    assert learner.early.decided == per_variant["ucb"] + per_variant["eg"]
    assert learner.early.clicked > 0

    # after the deadline every label is skipped for the early variants, applied for the deadline one
    drain(learner, now=T0 + 10 * WINDOW)
    learner.publish()
    stored = snapshot_fields(redis)
    n = redis.xlen(keys.labelled_stream("t1"))
    assert n == 600 and int(stored["applied"]) == int(stored["consumed"]) == n
    assert learner.early.labels_taken == per_variant["ucb"] + per_variant["eg"]
    assert_equal_to_deadline_learning(redis, cfg, stored)


def test_restart_resumes_early_updates_exactly_once(
    redis: redis_lib.Redis,
    settings: Settings,
) -> None:
    cfg = early_title()
    catalog.save_title(redis, cfg)
    first = Learner(redis, settings)
    first.step(now=T0)
    serve(redis, settings, 0, 200, click_on="b")
    first.step(now=T0 + 5)
    first.publish()
    since = float(snapshot_fields(redis)[keys.snapshot_early_field("ucb")])
    assert since == T0
    serve(redis, settings, 200, 200, click_on="c")
    drain(first, now=T0 + 10 * WINDOW)  # applied in memory, never published: then the process dies

    second = Learner(redis, settings)
    drain(second, now=T0 + 10 * WINDOW)
    assert second.early.since[("t1", "ucb")] == T0  # from the snapshot, not restarted
    second.publish()
    assert second.early.decided < 400  # only what the snapshot did not include
    stored = snapshot_fields(redis)
    assert_equal_to_deadline_learning(redis, cfg, stored)


def test_labels_decided_before_early_learning_began_are_learned_at_the_deadline(
    redis: redis_lib.Redis,
    settings: Settings,
) -> None:
    cfg = early_title()
    catalog.save_title(redis, cfg)
    serve(redis, settings, 0, 200, click_on="a")  # decided before any learner ran
    learner = Learner(redis, settings)
    learner.step(now=T0 + 3)  # early from T0 + 3: the 200 earlier decisions wait for their labels
    serve(redis, settings, 300, 200, click_on="a")
    drain(learner, now=T0 + 10 * WINDOW)
    learner.publish()
    labels = [orjson.loads(f[b"ev"]) for _, f in cast(list, redis.xrange(keys.labelled_stream("t1")))]
    assert len(labels) == 400
    early = [ev for ev in labels if ev["variant"] != "late" and ev["decided_at"] >= T0 + 3]
    assert 0 < len(early) < 200 and learner.early.labels_taken == len(early)
    stored = snapshot_fields(redis)
    assert_equal_to_deadline_learning(redis, cfg, stored)


def test_switching_early_updates_off_clears_the_marker(
    redis: redis_lib.Redis,
    settings: Settings,
) -> None:
    catalog.save_title(redis, early_title())
    learner = Learner(redis, settings)
    learner.step(now=T0)
    learner.publish()
    assert keys.snapshot_early_field("ucb") in snapshot_fields(redis)
    catalog.save_title(redis, title(experiment={"variants": [
        {"name": "ucb", "weight": 1, "policy": DEADLINE_ONLY_POLICY}]}))  # fmt: skip
    learner.step(now=T0 + 1)
    learner.publish()
    assert keys.snapshot_early_field("ucb") not in snapshot_fields(redis)


def test_deferred_impressions_are_left_to_the_deadline(
    redis: redis_lib.Redis,
    settings: Settings,
) -> None:
    """Pages decided with `defer`: an early-updating variant takes none of them early (one never activated
    must never be learned); activated ones are learned once, at their deadline, like deadline-only."""
    cfg = early_title()
    catalog.save_title(redis, cfg)
    learner = Learner(redis, settings)
    learner.step(now=T0)
    decider = Decider(redis, ModelCache(redis, settings), settings)
    join = RedisJoin(redis, settings)
    ids = []
    for i in range(300):
        (res,) = decider.page(f"u{i}", ROMANCE, ["t1"], defer=True, now=T0 + i * 0.01)
        assert not isinstance(res, Exception) and res.impression_id is not None
        ids.append((res.impression_id, res.artwork_id))
    shown = ids[::2]  # every other row scrolled into view
    assert set(join.activate([i for i, _ in shown], now=T0 + 4).values()) == {"activated"}
    for impression_id, artwork in shown:
        if artwork == "a":
            assert join.click(impression_id, now=T0 + 5).value == "recorded"
    learner.step(now=T0 + 6)
    assert learner.early.decided == 0 and learner.early.clicked == 0  # nothing deferred taken early

    drain(learner, now=T0 + 10 * WINDOW)
    learner.publish()
    stored = snapshot_fields(redis)
    assert redis.xlen(keys.labelled_stream("t1")) == len(shown)  # never-shown rows emit no label
    assert int(redis.hget(keys.join_counters("t1"), "never_shown") or 0) == len(ids) - len(shown)
    assert learner.early.labels_taken == 0 and int(stored["applied"]) == len(shown)
    assert_equal_to_deadline_learning(redis, cfg, stored)


def test_early_updates_are_refused_on_a_title_with_a_reward_rule() -> None:
    with pytest.raises(ValueError, match="early_updates learns click rewards only"):
        early_title(reward={"aggregate": "sum", "min": 0, "max": 10})


def default_title(**extra: Any) -> TitleConfig:
    """Variants that leave early_updates to its default, beside one that is deadline-only explicitly."""
    return title(
        experiment={
            "variants": [
                {"name": "ucb", "weight": 1, "policy": {"name": "linucb"}},
                {"name": "eg", "weight": 1, "policy": {"name": "epsilon_greedy", "params": {}}},
                {"name": "late", "weight": 1, "policy": DEADLINE_ONLY_POLICY},
            ]
        },
        **extra,
    )


def old_default(value: object, forgetting: float = 1.0) -> bool:
    """How `early_updates` resolved before its default became "auto": false unless set."""
    return False if value is None else policies_base.resolve_early_updates(value, forgetting)


def test_an_upgrade_switches_a_default_title_to_early_updates_keeping_its_statistics(
    redis: redis_lib.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot learned under the old default (deadline-only), a learner restarted under the new one:
    the variants that left the setting to its default switch to early updates in place, from `since` = the
    restart; impressions decided before it are learned at their deadline, later ones early; nothing is
    lost or counted twice, and after the window the statistics equal deadline-only learning (1e-9)."""
    cfg = default_title()
    catalog.save_title(redis, cfg)
    monkeypatch.setattr(policies_ridge, "resolve_early_updates", old_default)
    monkeypatch.setattr(policies_epsilon_greedy, "resolve_early_updates", old_default)
    old = Learner(redis, settings)
    serve(redis, settings, 0, 200, click_on="a")  # decided T0 .. T0 + 2
    drain(old, now=T0 + 11)  # the labels of about half of them
    old.publish()
    drain(old, now=T0 + 11.5)  # applied in memory, never published: then the old process stops
    stored = snapshot_fields(redis)
    assert not load_policy(stored[keys.snapshot_bytes_field("ucb")]).early_updates
    assert 0 < int(stored["applied"]) < 200 and keys.snapshot_early_field("ucb") not in stored
    monkeypatch.undo()

    new = Learner(redis, settings)
    new.step(now=T0 + 11.5)  # reloads the snapshot: ucb and eg learn early from here on
    assert new.early.since == {("t1", "ucb"): T0 + 11.5, ("t1", "eg"): T0 + 11.5}
    serve(redis, settings, 1200, 200, click_on="a")  # decided T0 + 12 .. T0 + 14
    new.step(now=T0 + 16)  # before any of the new windows closes
    new.publish()
    stored = snapshot_fields(redis)
    assert float(stored[keys.snapshot_early_field("ucb")]) == T0 + 11.5
    decisions = [d for _, d in cast(list, redis.xrange(keys.decisions_stream("t1")))][200:]
    late = [d for d in decisions if b'"variant":"late"' in d[b"json"]]
    assert 0 < len(late) < 200 and new.early.decided == 200 - len(late)  # in seconds, after the upgrade
    assert load_policy(stored[keys.snapshot_bytes_field("ucb")]).early_updates
    assert not load_policy(stored[keys.snapshot_bytes_field("late")]).early_updates

    drain(new, now=T0 + 10 * WINDOW)
    new.publish()
    stored = snapshot_fields(redis)
    assert int(stored["applied"]) == int(stored["consumed"]) == redis.xlen(keys.labelled_stream("t1")) == 400
    assert new.early.labels_taken == 200 - len(late)  # the old 200 came at their deadline
    assert_equal_to_deadline_learning(redis, cfg, stored)


def test_the_default_is_deadline_only_on_a_title_with_a_reward_rule(
    redis: redis_lib.Redis, settings: Settings
) -> None:
    """A reward rule resolves the default to false (no config that was valid becomes invalid); adding one
    to a title that learns early by default starts its variants afresh (decisions entered early await
    outcomes the deadline would count again); dropping it switches them on, keeping their statistics."""
    graded = {"aggregate": "sum", "min": 0, "max": 10}
    cfg = default_title(reward=graded)
    assert not any(build_policy(cfg, v.name, 0).early_updates for v in cfg.variants)
    catalog.save_title(redis, default_title())
    learner = Learner(redis, settings)
    learner.step(now=T0)
    serve(redis, settings, 0, 100, click_on="a")
    learner.step(now=T0 + 5)
    assert learner.early.decided > 0
    assert learner.book.policies[("t1", "ucb")].early_updates

    catalog.save_title(redis, default_title(reward=graded))
    learner.step(now=T0 + 6)
    learner.publish()
    stored = snapshot_fields(redis)
    for variant in ("ucb", "eg"):
        policy = learner.book.policies[("t1", variant)]
        assert not policy.early_updates and not load_policy(policy.to_bytes()).early_updates
        assert keys.snapshot_early_field(variant) not in stored
    np.testing.assert_array_equal(arrays(stored[keys.snapshot_bytes_field("ucb")])["b"], 0.0)  # afresh
    assert ("t1", "ucb") not in learner.early.since

    drain(learner, now=T0 + 10 * WINDOW)  # every label, learned at the deadline
    learned = learner.book.snapshot(("t1", "ucb"))
    catalog.save_title(redis, default_title())
    learner.step(now=T0 + 10 * WINDOW)
    policy = learner.book.policies[("t1", "ucb")]
    assert policy.early_updates and learner.early.since[("t1", "ucb")] == T0 + 10 * WINDOW
    assert_same_statistics(policy.to_bytes(), learned)  # kept


@pytest.mark.parametrize("spelling", [{}, {"early_updates": "auto"}, {"early_updates": None}])
def test_auto_is_the_omitted_setting(spelling: dict[str, Any]) -> None:
    """ "auto" and null are the default spelled out: one spec, one fingerprint, resolved per title."""
    cfg = title(policy={"name": "linucb", "params": {"alpha": 0.5, **spelling}})
    assert cfg.variant("default").policy.params == {"alpha": 0.5}
    assert spec_fingerprint(cfg, "default") == spec_fingerprint(
        title(policy={"name": "linucb", "params": {"alpha": 0.5}}), "default"
    )
    assert build_policy(cfg, "default", 0).early_updates
    explicit = title(policy={"name": "linucb", "params": {"alpha": 0.5, "early_updates": True}})
    assert spec_fingerprint(explicit, "default") != spec_fingerprint(cfg, "default")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"early_updates": True, "forgetting": 0.99}, "early_updates needs forgetting = 1"),
        ({"early_updates": "yes"}, 'early_updates must be true, false or "auto"'),
    ],
)
def test_invalid_early_updates_are_refused_by_the_catalog(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        title(policy={"name": "linucb", "params": params})


def test_forgetting_keeps_a_default_title_deadline_only() -> None:
    cfg = title(policy={"name": "linucb", "params": {"forgetting": 0.99}}, reward={"aggregate": "max"})
    assert not build_policy(cfg, "default", 0).early_updates
