"""The short soak (the long one is bench/soak.py; numbers in docs/reliability.md): memory must not grow with
traffic. In process: 100k impressions through decide → join → learn → publish, RSS and live Python
objects flat after warm-up; a planted leak of 2 kB per impression is caught. Over HTTP: 3k impressions
against gunicorn + learner + Redis with small retention: workers' RSS flat, Redis memory, keys and stream
lengths bounded by the retention settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.load import LoadPlan
from tests.faults.scenario import TITLE
from tests.faults.soak import InProcessSoak, flat, soak_http, soak_inprocess
from tests.faults.stack import ServiceStack, StackSettings

RETENTION_EVENTS = 1000  # the smallest the settings allow
WINDOW = 2.0
RETENTION_SECONDS = 2.0
STREAM_SLACK = 200  # approximate MAXLEN trims whole nodes of 100 entries


@pytest.mark.slow
def test_inprocess_memory_is_flat_over_100k_impressions() -> None:
    samples = soak_inprocess(InProcessSoak(impressions=100_000, samples=40))
    rss, blocks = flat([s.rss for s in samples]), flat([float(s.blocks) for s in samples])
    print(f"\nRSS {rss}; Python blocks {blocks}")
    assert rss.ok and blocks.ok, (rss, blocks)
    # the join holds one window of impressions, not the whole run
    assert max(s.get("pending") for s in samples) <= 1.2 * 10.0 * 1000.0
    assert samples[-1].get("applied") > 80_000


@pytest.mark.slow
def test_a_planted_leak_is_caught() -> None:
    samples = soak_inprocess(InProcessSoak(impressions=30_000, samples=20), leak_bytes=2000)
    assert not flat([s.rss for s in samples]).ok
    assert not flat([float(s.blocks) for s in samples]).ok


@pytest.mark.slow
def test_http_soak_memory_is_bounded_by_retention(tmp_path: Path) -> None:
    settings = StackSettings(
        attribution_window=WINDOW,
        extra_env=(
            ("ARTBANDIT_RETENTION_EVENTS", str(RETENTION_EVENTS)),
            ("ARTBANDIT_RETENTION_SECONDS", f"{RETENTION_SECONDS:g}"),
        ),
    )
    rate = 250.0
    with ServiceStack(tmp_path, settings) as stack:
        stack.put_title("soak", TITLE)
        plan = LoadPlan("soak", impressions=3000, rate=rate, click_probability=0.3, max_duration=120)
        samples, result = soak_http(stack, plan, every=0.5)
    counts = result.counts()
    assert counts["impression logged"] > 2400, counts  # a busy machine may serve some fallbacks
    warm = [s for s in samples if s.seconds >= 2 * (WINDOW + RETENTION_SECONDS)]
    assert len(warm) >= 10, [s.seconds for s in samples]
    workers = flat([float(s.rss) for s in warm])
    redis_memory = flat([s.get("redis_used_memory") for s in warm], tolerance=0.25)
    print(f"\nworkers' RSS {workers}; Redis used_memory {redis_memory}")
    assert workers.ok and redis_memory.ok, (workers, redis_memory)
    for s in samples:
        assert (
            s.get("decisions") <= RETENTION_EVENTS + STREAM_SLACK
            and s.get("labelled") <= RETENTION_EVENTS + STREAM_SLACK
        )
        # impression hashes live window + retention (x2: a late client catches up in bursts); without
        # the TTLs all 3,000 would stay
        assert s.get("redis_keys") <= 2 * rate * (WINDOW + RETENTION_SECONDS) + 100, s
