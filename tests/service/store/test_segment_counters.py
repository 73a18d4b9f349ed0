"""Segment counters: written by impress.lua and click.lua, read by `counters.raw_segments`, and exactly
equal to a replay of the same events (the decisions stream plus each click's outcome)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import redis as redis_lib

from service.catalog import parse_title
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.join.rule import ClickOutcome
from service.segments import Segmenter
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog, counters, keys
from service.store.records import DecisionRecord, iter_decisions

T0 = 1_700_000_000.0
FEATURES = ["horror", "romance", "comedy", "<b>odd|feature</b>"]  # a segment name may hold '|' and markup
ARTWORKS = ["a", "b", "c"]
VARIANTS = ["control", "explore"]
WINDOW = 300.0


@pytest.fixture()
def settings(redis_server: PrivateRedis) -> Settings:
    return Settings.load({"redis_url": redis_server.url, "attribution_window": WINDOW}, environ={})


def _context(rng: np.random.Generator) -> dict[str, float]:
    tastes = rng.dirichlet(np.full(len(FEATURES), 0.3))
    return {f: round(float(v), 4) for f, v in zip(FEATURES, tastes, strict=True) if rng.random() < 0.9}


def _replay(r: redis_lib.Redis, title: str, segmenter: Segmenter, recorded: set[str]) -> Counter[str]:
    """The counters recomputed from the log: one impression per decision record, one click per
    impression whose click was 'recorded'."""
    expected: Counter[str] = Counter()
    for rec in iter_decisions(r, title):
        segment = segmenter.assign(rec.context)
        expected[keys.segment_impressions_field(rec.variant, segment, rec.chosen)] += 1
        if rec.event_id in recorded:
            expected[keys.segment_clicks_field(rec.variant, segment, rec.chosen)] += 1
    return expected


def test_counters_equal_a_replay_of_the_same_events(redis: redis_lib.Redis, settings: Settings) -> None:
    rng = np.random.default_rng(17)
    join = RedisJoin(redis, settings)
    segmenter = Segmenter.for_title(FEATURES, None)
    ids: list[str] = []
    outcomes: list[tuple[str, ClickOutcome]] = []
    for i in range(600):
        at = T0 + i
        rec = DecisionRecord(
            event_id=keys.new_impression_id("t1", at), title_id="t1", variant=str(rng.choice(VARIANTS)),
            user_id=f"u{rng.integers(50)}", context=_context(rng), artworks=ARTWORKS,
            probabilities=[1 / 3] * 3, chosen=str(rng.choice(ARTWORKS)), propensity=1 / 3,
            model_version=0, policy="uniform", decided_at=at,
        )
        join.impress(rec, segment=segmenter.assign(rec.context))
        ids.append(rec.event_id)
        if rng.random() < 0.3:  # clicks: in time, duplicated, or late
            target = ids[int(rng.integers(len(ids)))]
            late = rng.random() < 0.2
            now = at + (WINDOW + 50 if late else 1)
            outcomes.append((target, join.click(target, now=now)))
    join.expire_all("t1", now=T0 + 10_000)
    kinds = Counter(o for _, o in outcomes)
    assert kinds[ClickOutcome.RECORDED] > 50
    assert kinds[ClickOutcome.DUPLICATE] > 0 and kinds[ClickOutcome.LATE] > 0
    recorded = {i for i, o in outcomes if o is ClickOutcome.RECORDED}

    stored = {k.decode(): int(v) for k, v in redis.hgetall(keys.segment_counters("t1")).items()}
    assert stored == dict(_replay(redis, "t1", segmenter, recorded))

    # the reader: the same numbers, and per variant × artwork they sum to the totals exactly
    raw = counters.raw_segments(redis, "t1")
    assert "<b>odd|feature</b>" in raw["explore"]
    totals = counters.raw_title_stats(redis, "t1", now=T0 + 600)["variants"]
    for variant, per_segment in raw.items():
        for artwork in ARTWORKS:
            for kind in ("impressions", "clicks"):
                summed = sum(cells.get(artwork, {}).get(kind, 0) for cells in per_segment.values())
                assert summed == totals[variant]["artworks"][artwork][kind], (variant, artwork, kind)


def test_no_segment_counts_nothing(redis: redis_lib.Redis, settings: Settings) -> None:
    join = RedisJoin(redis, settings)
    rec = DecisionRecord(
        event_id=keys.new_impression_id("t1", T0), title_id="t1", variant="default", user_id="u",
        context={"horror": 1.0}, artworks=["a"], probabilities=[1.0], chosen="a", propensity=1.0,
        model_version=0, policy="uniform", decided_at=T0,
    )
    join.impress(rec)
    assert join.click(rec.event_id, now=T0 + 1) is ClickOutcome.RECORDED
    assert redis.exists(keys.segment_counters("t1")) == 0
    assert counters.raw_segments(redis, "t1") == {}


def test_the_decider_counts_by_the_titles_rule(redis: redis_lib.Redis, settings: Settings) -> None:
    cfg = parse_title("t1", {
        "features": ["horror", "romance"], "artworks": [{"id": "a"}, {"id": "b"}],
        "policy": {"name": "uniform"},
        "segments": {"rules": [{"name": "fans of fear", "when": {"horror": 0.5}}]},
    })
    catalog.save_title(redis, cfg)
    decider = Decider(redis, ModelCache(redis, settings, seed=3), settings)
    scared = decider.impression("t1", "u1", {"horror": 0.8}, now=T0)
    other = decider.impression("t1", "u2", {"romance": 0.8}, now=T0 + 1)
    assert scared.impression_id is not None
    assert decider.join.click(scared.impression_id, now=T0 + 2) is ClickOutcome.RECORDED
    raw = counters.raw_segments(redis, "t1")
    assert raw["default"]["fans of fear"] == {scared.artwork_id: {"impressions": 1, "clicks": 1}}
    assert raw["default"]["other"] == {other.artwork_id: {"impressions": 1, "clicks": 0}}
