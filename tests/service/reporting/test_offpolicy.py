"""The dashboard's off-policy panel, on the real data plane: viewers of a known world meet the real decide
path (Decider -> impress.lua), click through click.lua, the sweep labels the rest, the learner publishes;
then `service.reporting.offpolicy` evaluates every variant's policy on the explore variant's logs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pytest
import redis as redis_lib
from flask import Flask

from service.app import create_app
from service.catalog import TitleConfig, parse_title
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.learning.learner import Learner
from service.reporting.offpolicy import (
    ExploreLog,
    OffPolicyPanel,
    explore_variant,
    logged_events,
    offpolicy_rows,
    published_policy,
    target_probabilities,
)
from service.reporting.ope import LoggedData
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog, keys
from service.store.records import StreamEntries

WINDOW = 60.0
ARTWORKS = ("kiss", "scream", "logo")
# The world: half the viewers love romance, half horror; P(click | taste, artwork).
TASTES = {"romance": {"romance": 1.0, "horror": 0.0}, "horror": {"romance": 0.0, "horror": 1.0}}
P_CLICK = {
    "romance": {"kiss": 0.60, "scream": 0.10, "logo": 0.30},
    "horror": {"kiss": 0.10, "scream": 0.50, "logo": 0.30},
}
TRUE_CTR = {a: (P_CLICK["romance"][a] + P_CLICK["horror"][a]) / 2 for a in ARTWORKS}
BODY: dict[str, Any] = {
    "name": "Two Tastes",
    "features": ["romance", "horror"],
    "artworks": [{"id": a} for a in ARTWORKS],
    "experiment": {
        "control": "control",
        "variants": [
            # explore is deliberately not first, and not the only non-learning variant
            {"name": "control", "weight": 10, "policy": {"name": "fixed", "params": {"arm": "kiss"}}},
            {"name": "explore", "weight": 60, "policy": {"name": "uniform"}},
            # a floor of 1e-9: (almost) deterministic, so SNIPS is the replay estimate of one artwork
            {
                "name": "fixed",
                "weight": 10,
                "policy": {"name": "fixed", "params": {"arm": "scream", "floor": 1e-9}},
            },
            {"name": "linucb", "weight": 20, "policy": {"name": "linucb", "params": {"alpha": 0.2}}},
        ],
    },
}
N_IMPRESSIONS = 3000


def title_config(body: dict[str, Any] | None = None, title_id: str = "two-tastes") -> TitleConfig:
    return parse_title(title_id, BODY if body is None else body)


def make_settings(server: PrivateRedis) -> Settings:
    return Settings.load(
        {
            "redis_url": server.url,
            "attribution_window": WINDOW,
            "refresh_interval": 60.0,
            "redis_timeout": 2.0,
        },
        environ={},
    )


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return make_settings(redis_server)


def simulate(
    redis: redis_lib.Redis, settings: Settings, cfg: TitleConfig, n: int = N_IMPRESSIONS, seed: int = 3
) -> None:
    """n impressions through the real decide path; clicks from the world; sweep; learn and publish."""
    catalog.save_title(redis, cfg)
    decider = Decider(redis, ModelCache(redis, settings, seed=seed), settings)
    join = RedisJoin(redis, settings)
    rng = np.random.default_rng(seed)
    t0 = time.time() - 2 * WINDOW
    for i in range(n):
        taste = "romance" if rng.random() < 0.5 else "horror"
        at = t0 + i * 0.001
        res = decider.impression(cfg.title_id, f"viewer-{i}", TASTES[taste], now=at)
        assert res.impression_id is not None
        if rng.random() < P_CLICK[taste][res.artwork_id]:
            assert join.click(res.impression_id, now=at + 1.0).value == "recorded"
    learner = Learner(redis, settings)
    while learner.step(now=t0 + n * 0.001 + WINDOW + 1):
        pass
    assert learner.publish() == 1


@pytest.fixture(scope="module")
def simulated(redis_server: PrivateRedis) -> dict[bytes, bytes]:
    """The data plane after one simulation (every key, DUMP-serialized), so tests restore it instead of
    simulating again."""
    r = redis_lib.Redis.from_url(redis_server.url)
    try:
        r.flushall()
        simulate(r, make_settings(redis_server), title_config())
        dumped = {key: cast(bytes, r.dump(key)) for key in r.scan_iter()}
        r.flushall()
    finally:
        r.close()
    return dumped


@pytest.fixture()
def logged(redis: redis_lib.Redis, simulated: dict[bytes, bytes]) -> TitleConfig:
    for key, value in simulated.items():
        redis.restore(key, 0, value)
    return title_config()


def counts(redis: redis_lib.Redis, cfg: TitleConfig) -> tuple[int, dict[str, int], dict[str, int]]:
    """(n, impressions per artwork, clicks per artwork) of the explore variant's labelled events."""
    events = logged_events(redis, cfg.title_id, "explore")
    shown = {a: sum(e.artwork_id == a for e in events) for a in ARTWORKS}
    clicks = {a: int(sum(e.reward for e in events if e.artwork_id == a)) for a in ARTWORKS}
    return len(events), shown, clicks


# ------------------------------------------------------------------------------------------- estimates
def test_fixed_variant_is_the_replay_estimate_of_its_artwork(
    redis: redis_lib.Redis, logged: TitleConfig
) -> None:
    n, shown, clicks = counts(redis, logged)
    assert 1600 < n < 2000  # 60% of 3000 (sticky hashing, not exact)
    rows = {row["variant"]: row for row in offpolicy_rows(redis, logged)}
    assert list(rows) == ["control", "fixed", "linucb"]  # every variant but explore, in catalog order
    fixed = rows["fixed"]
    assert fixed["n"] == n and fixed["version"] >= 1
    # On uniform logs a deterministic target's SNIPS is replay: the artwork's empirical CTR in the logs.
    assert fixed["snips"] == pytest.approx(clicks["scream"] / shown["scream"], abs=1e-8)
    # IPS divides by the expected impressions n / K instead of the realized ones.
    assert fixed["ips"] == pytest.approx(len(ARTWORKS) * clicks["scream"] / n, abs=1e-8)
    # Both equal the empirical CTR up to the realized share of the artwork ...
    assert fixed["ips"] * n / len(ARTWORKS) == pytest.approx(fixed["snips"] * shown["scream"], abs=1e-6)
    # ... and their intervals cover the world's true CTR of that artwork.
    for key in ("ips_ci", "snips_ci"):
        lo, hi = fixed[key]
        assert lo < TRUE_CTR["scream"] < hi, (key, fixed)


def test_default_floor_weights_every_artwork_by_the_policy_probability(
    redis: redis_lib.Redis, logged: TitleConfig
) -> None:
    n, shown, clicks = counts(redis, logged)
    control = next(row for row in offpolicy_rows(redis, logged) if row["variant"] == "control")
    policy, _ = published_policy(redis, logged, "control")
    pi = policy.probabilities({})  # context-free: the same for every viewer
    assert pi["kiss"] < 1.0 and min(pi.values()) > 0.0  # the floor keeps every artwork possible
    k = len(ARTWORKS)
    assert control["ips"] == pytest.approx(k / n * sum(pi[a] * clicks[a] for a in ARTWORKS), rel=1e-12)
    assert control["snips"] == pytest.approx(
        sum(pi[a] * clicks[a] for a in ARTWORKS) / sum(pi[a] * shown[a] for a in ARTWORKS), rel=1e-12
    )


def test_learned_policy_uses_the_viewer_context(redis: redis_lib.Redis, logged: TitleConfig) -> None:
    rows = {row["variant"]: row for row in offpolicy_rows(redis, logged)}
    linucb = rows["linucb"]
    assert linucb["version"] >= 1  # the learner's published snapshot, not a fresh policy
    # The batch path agrees with one-at-a-time `probabilities(context)` of the same snapshot.
    events = logged_events(redis, logged.title_id, "explore")
    policy, _ = published_policy(redis, logged, "linucb")
    by_event = np.array([policy.probabilities(e.context)[e.artwork_id] for e in events])
    data = LoggedData.from_events(events, logged.features)
    np.testing.assert_allclose(target_probabilities(policy, data), by_event, rtol=1e-12)
    w = by_event / data.propensity
    assert linucb["ips"] == pytest.approx(float(np.mean(w * data.reward)), rel=1e-12)
    # Showing each taste its artwork (truth 0.55) beats any single artwork (at most 0.35): the estimate
    # says so with room to spare, and its interval lies above the best fixed artwork's truth.
    assert linucb["ips_ci"][0] > max(TRUE_CTR.values())
    assert linucb["snips"] > rows["control"]["snips"] and linucb["snips"] > rows["fixed"]["snips"]


def test_unpublished_or_respecified_variants_use_the_fresh_policy(
    redis: redis_lib.Redis, logged: TitleConfig
) -> None:
    _, version = published_policy(redis, logged, "linucb")
    assert version >= 1
    body = {**BODY, "experiment": {**BODY["experiment"], "variants": [
        {**v, "policy": {"name": "linucb", "params": {"alpha": 0.5}}} if v["name"] == "linucb" else v
        for v in BODY["experiment"]["variants"]
    ]}}  # fmt: skip
    changed = title_config(body)
    policy, version = published_policy(redis, changed, "linucb")
    assert version == 0  # the snapshot was made for alpha 0.2: workers serve a fresh policy, and so do we
    assert policy.probabilities(TASTES["romance"]) == pytest.approx({a: 1 / 3 for a in ARTWORKS})


def test_too_few_logged_events_give_rows_without_estimates(
    redis: redis_lib.Redis, settings: Settings
) -> None:
    cfg = title_config()
    catalog.save_title(redis, cfg)
    rows = offpolicy_rows(redis, cfg)
    assert [r["variant"] for r in rows] == ["control", "fixed", "linucb"]
    assert all(r["n"] == 0 and r["ips"] is None and r["snips_ci"] is None and r["version"] == 0 for r in rows)


def test_limit_bounds_the_events_read(redis: redis_lib.Redis, logged: TitleConfig) -> None:
    few = logged_events(redis, logged.title_id, "explore", limit=500)
    every = logged_events(redis, logged.title_id, "explore")
    assert 0 < len(few) < 500 and few == every[-len(few) :]  # the newest ones, oldest first
    with pytest.raises(ValueError, match="limit must be >= 1"):
        logged_events(redis, logged.title_id, "explore", limit=0)


def test_explore_log_reads_only_new_entries_and_keeps_the_window(
    redis: redis_lib.Redis, logged: TitleConfig
) -> None:
    """Entries of the simulated title are appended to a second title's stream in chunks (one malformed);
    after each chunk the incremental log equals a fresh read of the newest `limit` entries."""
    entries = cast(StreamEntries, redis.xrange(keys.labelled_stream(logged.title_id)))
    copy = keys.labelled_stream("copy")
    explore_log = ExploreLog("copy", "explore", limit=700)
    assert explore_log.update(redis) == []  # no stream yet
    chunks = [1, 100, 250, 699, 700, 900, 10]  # within the window, exactly a window, more than one
    start = 0
    for size in chunks:
        pipe = redis.pipeline(transaction=False)
        for _, fields in entries[start : start + size]:
            pipe.xadd(copy, fields)  # type: ignore[arg-type]
        if size == 250:
            pipe.xadd(copy, {"id": "not-json"})
        pipe.execute()
        start += size
        events = explore_log.update(redis)
        assert events == logged_events(redis, "copy", "explore", limit=700), size
        assert events and all(e.variant == "explore" for e in events)
    assert start <= len(entries)


# --------------------------------------------------------------------------------- explore and caching
@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        ([("a", "fixed"), ("b", "uniform")], "b"),  # the uniform one, whatever its name
        ([("u1", "uniform"), ("explore", "uniform")], "explore"),  # several: the one named explore
        ([("explore", "epsilon_greedy"), ("b", "linucb")], "explore"),  # named explore: logged propensities
        ([("a", "fixed"), ("b", "linucb")], None),
    ],
)
def test_explore_variant(variants: list[tuple[str, str]], expected: str | None) -> None:
    body = {
        "features": ["romance", "horror"], "artworks": [{"id": a} for a in ARTWORKS],
        "experiment": {"variants": [{"name": n, "weight": 1, "policy": {"name": p}} for n, p in variants]},
    }  # fmt: skip
    assert explore_variant(title_config(body)) == expected


def test_panel_reuses_rows_for_ttl_seconds_and_follows_config_changes(
    redis: redis_lib.Redis, settings: Settings
) -> None:
    cfg = title_config()
    catalog.save_title(redis, cfg)
    now = [100.0]
    panel = OffPolicyPanel(ttl=30.0, clock=lambda: now[0])
    assert panel.rows(redis, cfg)[0]["n"] == 0
    simulate(redis, settings, cfg, n=300)
    now[0] += 29.0
    assert panel.rows(redis, cfg)[0]["n"] == 0  # cached
    now[0] += 2.0
    assert panel.rows(redis, cfg)[0]["n"] > 100  # recomputed after the ttl
    fewer = title_config(
        {**BODY, "experiment": {**BODY["experiment"], "variants": BODY["experiment"]["variants"][:2]}}
    )
    assert [r["variant"] for r in panel.rows(redis, fewer)] == ["control"]  # a new config is not served stale
    with pytest.raises(ValueError, match="ttl must be >= 0"):
        OffPolicyPanel(ttl=-1.0)


# --------------------------------------------------------------------------------------- stats and page
@pytest.fixture()
def app(redis: redis_lib.Redis, redis_server: PrivateRedis) -> Iterator[Flask]:
    app = create_app({"redis_url": redis_server.url, "attribution_window": WINDOW, "redis_timeout": 2.0})
    yield app
    app.extensions["artbandit"].close()


def test_panel_appears_in_the_stats_and_on_the_page(
    app: Flask, redis: redis_lib.Redis, logged: TitleConfig
) -> None:
    client = app.test_client()
    doc = client.get("/stats/two-tastes").get_json()
    online = {v["variant"]: v["ctr"] for v in doc["variants"]}
    assert [o["variant"] for o in doc["offpolicy"]] == ["control", "fixed", "linucb"]
    for o in doc["offpolicy"]:
        assert o["online_ctr"] == online[o["variant"]]
        assert o["ips_ci"][0] <= o["ips"] <= o["ips_ci"][1] and o["n"] > 1600
    page = client.get("/dashboard/two-tastes").get_data(as_text=True)
    assert 'data-testid="offpolicy-table"' in page
    for name in ("control", "fixed", "linucb"):
        assert f'<tr data-variant="{name}">\n      <th scope="row">{name}</th>' in page
    # the overview does not pay for the estimates
    assert client.get("/dashboard").status_code == 200


def test_no_explore_variant_no_panel(app: Flask, redis: redis_lib.Redis) -> None:
    body = {**BODY, "experiment": None, "policy": {"name": "linucb"}}
    catalog.save_title(redis, title_config(body))
    client = app.test_client()
    assert client.get("/stats/two-tastes").get_json()["offpolicy"] == []
    assert "offpolicy-table" not in client.get("/dashboard/two-tastes").get_data(as_text=True)


def test_panel_shows_the_best_setting_on_the_explore_logs_behind_the_gate(
    app: Flask, redis: redis_lib.Redis, logged: TitleConfig
) -> None:
    """Known answer: the two tastes prefer different artworks, so a LinUCB that learns them is worth about
    0.55 against the explore traffic's ~0.32; some alpha of the grid passes the gate and is recommended."""
    client = app.test_client()
    t = client.get("/stats/two-tastes").get_json()["offpolicy_tuning"]
    assert t["variant"] == "linucb" and t["policy"] == "linucb" and t["message"] is None
    assert t["n"] > 1600 and t["confidence"] == pytest.approx(1 - 0.05 / 4)
    assert [s["params"] for s in t["settings"]] == [{"alpha": a} for a in (0.1, 0.3, 1.0, 3.0)]
    for s in t["settings"]:
        assert s["passes_gate"] == (s["ci_low"] > t["logged_value"])
    assert t["recommended"] is not None and t["recommended"]["ci_low"] > t["logged_value"]
    assert 0.45 < t["recommended"]["dr"] < 0.65
    page = client.get("/dashboard/two-tastes").get_data(as_text=True)
    assert 'data-testid="offpolicy-tuning"' in page and "Recommended: alpha = " in page


def test_panel_tuning_waits_for_enough_explore_events(redis: redis_lib.Redis, logged: TitleConfig) -> None:
    from service.reporting.offpolicy import MIN_TUNE_EVENTS, tuning_row

    events = ExploreLog("two-tastes", "explore").update(redis)[: MIN_TUNE_EVENTS - 1]
    row = tuning_row(logged, "explore", events)
    assert row is not None and row["recommended"] is None and "waiting for" in row["message"]
    no_grid = title_config({**BODY, "experiment": {"variants": [
        {"name": "explore", "weight": 1, "policy": {"name": "uniform"}},
        {"name": "fixed", "weight": 1, "policy": {"name": "fixed", "params": {"arm": "kiss"}}},
    ]}})  # fmt: skip
    assert tuning_row(no_grid, "explore", events) is None
