"""Prometheus metrics of one API process, and the `/metrics` exposition.

One `Metrics` object per app (so tests can build many apps): its metrics live in a private registry.
Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` is set before any worker starts (by `artbandit serve` or
`service/gunicorn_conf.py`); prometheus_client then keeps every value in per-process files in that
directory, and a scrape of any worker sums all workers' files (`MultiProcessCollector`).

Learner lag, snapshot age, published versions and the join's outcomes are not per-process numbers: they
are read from Redis at scrape time (`read_store_health`) by `StoreCollector`, so every worker reports the
same values and nothing has to be aggregated across processes.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from service.errors import ArtbanditError
from service.store import counters, keys
from service.store.clients import Client
from service.store.counters import JOIN_OUTCOMES

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# request latency buckets, seconds: the API answers in about a millisecond; 50 ms is the Redis timeout
MAX_CACHED_CHILDREN = 10_000
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The API's own counters and histograms. Recording is a dictionary lookup and a lock."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "artbandit_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.impressions = Counter(
            "artbandit_impressions",
            "Impressions answered, by title and variant; fallback=true when the store was unreachable.",
            ["title", "variant", "fallback"],
            registry=self.registry,
        )
        self.clicks = Counter(
            "artbandit_clicks",
            "Clicks received, by join outcome (recorded, duplicate, late, unknown).",
            ["outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "artbandit_http_errors",
            "Error responses, by error code.",
            ["code"],
            registry=self.registry,
        )
        # labelled children by label values (the hot path's dictionary lookup; dict ops are atomic)
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._impression_children: dict[tuple[str, str, bool], Any] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:  # `labels()` validates and hashes its arguments: once per label set
            child = self._request_children[key] = self.request_seconds.labels(route, method, str(status))
        child.observe(seconds)

    def impression(self, title: str, variant: str, fallback: bool) -> None:
        key = (title, variant, fallback)
        child = self._impression_children.get(key)
        if child is None:
            child = self._impressions_children_for(key)
        child.inc()

    def _impressions_children_for(self, key: tuple[str, str, bool]) -> Any:
        if len(self._impression_children) >= MAX_CACHED_CHILDREN:  # titles come and go: stay bounded
            self._impression_children.clear()
        title, variant, fallback = key
        child = self.impressions.labels(title, variant, "true" if fallback else "false")
        self._impression_children[key] = child
        return child

    def click(self, outcome: str) -> None:
        self.clicks.labels(outcome).inc()

    def error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def exposition(self, store_health: Callable[[], Mapping[str, Any]] | None = None) -> tuple[bytes, str]:
        """The text exposition of this process (or of all workers in multiprocess mode) plus the store's
        learner health. Returns (body, content type)."""
        registry = CollectorRegistry(auto_describe=False)
        directory = multiprocess_dir()
        if directory is not None:
            MultiProcessCollector(registry, path=directory)
        else:
            registry.register(_Forward(self.registry))
        if store_health is not None:
            registry.register(StoreCollector(store_health))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward(Collector):
    """Expose another registry's metrics through a scrape registry (single-process mode)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


class StoreCollector(Collector):
    """Numbers read from Redis at scrape time, the same whichever worker answers.

    `health()` returns `read_store_health(r)`: per title, learner lag, snapshot age, published versions
    and the join's outcome counters. `artbandit_store_up` is 0 when Redis did not answer; the scrape
    itself still succeeds.
    """

    def __init__(self, health: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("artbandit_store_up", "1 when Redis answered this scrape's health queries.")
        try:
            data = self.health()
        except (RedisError, ArtbanditError) as exc:  # the scrape still succeeds; store_up says why
            log.warning("metrics: reading learner health from Redis failed: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        lag = GaugeMetricFamily(
            "artbandit_learner_lag_events",
            "Labelled events not yet included in a published snapshot.",
            labels=["title"],
        )
        age = GaugeMetricFamily(
            "artbandit_snapshot_age_seconds", "Seconds since the learner last published this title.",
            labels=["title"],
        )  # fmt: skip
        versions = GaugeMetricFamily(
            "artbandit_model_version", "Published policy version per variant.", labels=["title", "variant"]
        )
        throttled = CounterMetricFamily(
            "artbandit_learner_throttled_events",
            "Rewarded events over their viewer's cap (viewer_reward_cap): consumed, never learned.",
            labels=["title"],
        )
        pending = GaugeMetricFamily(
            "artbandit_pending_impressions",
            "Impressions waiting for a click or their deadline.",
            labels=["title"],
        )
        join = CounterMetricFamily(
            "artbandit_join_outcomes",
            "How impressions and clicks ended in the join: clicked, defaulted (no click in the window), "
            "late, duplicate and unknown clicks, lost (expired before any sweep labelled it).",
            labels=["title", "outcome"],
        )
        for title, h in sorted(data.items()):
            lag.add_metric([title], float(h.get("lag", 0)))
            throttled.add_metric([title], float(h.get("throttled", 0)))
            if _is_number(h.get("snapshot_age_s")):
                age.add_metric([title], float(h["snapshot_age_s"]))
            for variant, version in sorted((h.get("versions") or {}).items()):
                versions.add_metric([title, variant], float(version))
            outcomes = dict(h.get("join") or {})
            pending.add_metric([title], float(outcomes.pop("pending", 0)))
            for outcome, count in sorted(outcomes.items()):
                join.add_metric([title, outcome], float(count))
        yield from (lag, age, versions, throttled, pending, join)


def read_store_health(r: Client) -> dict[str, dict[str, Any]]:
    """`counters.learner_health(r)` plus each title's join counters and pending count."""
    health = counters.learner_health(r)
    titles = sorted(health)
    pipe = r.pipeline(transaction=False)
    for title in titles:
        pipe.hgetall(keys.join_counters(title))
        pipe.zcard(keys.pending(title))
    replies = pipe.execute()
    out: dict[str, dict[str, Any]] = {}
    for i, title in enumerate(titles):
        counts, n_pending = replies[2 * i], replies[2 * i + 1]
        join = {name: int(counts.get(name.encode(), 0)) for name in JOIN_OUTCOMES}
        pending = int(n_pending) - counters.awaiting_activation(counts)
        out[title] = {**health[title], "join": {"pending": pending, **join}}
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
