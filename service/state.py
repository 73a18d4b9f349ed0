"""The per-process service state: settings, metrics, and what is bound to Redis connections.

`Artbandit` is installed as `app.extensions["artbandit"]` by `create_app`. Nothing touches Redis when
it is built: the clients and the objects built on them are created on first use in the process that
serves, i.e. after gunicorn has forked its workers, and again if the process finds itself forked later.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from service.catalog import TitleConfig
from service.config import Settings
from service.errors import ArtbanditError
from service.join.redis_join import RedisJoin
from service.metrics import Metrics, read_store_health
from service.reporting import segments, stats, trends
from service.reporting.offpolicy import OffPolicyPanel
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog, counters
from service.store.clients import Client, make_redis

log = logging.getLogger(__name__)
EXTENSION = "artbandit"


@dataclass(frozen=True)
class _ProcessState:
    """Everything bound to Redis connections, owned by one process."""

    pid: int
    redis: Client  # short timeouts: the request path
    admin_redis: Client  # ordinary timeouts: admin, stats, metrics
    cache: ModelCache
    decider: Decider
    join: RedisJoin

    @classmethod
    def create(cls, settings: Settings) -> _ProcessState:
        r = make_redis(settings, for_api=True)
        cache = ModelCache(r, settings)
        decider = Decider(r, cache, settings)
        return cls(
            pid=os.getpid(),
            redis=r,
            admin_redis=make_redis(settings, for_api=False),
            cache=cache,
            decider=decider,
            join=decider.join,  # shares the cache's circuit breaker: one view of Redis health per worker
        )

    def close(self) -> None:
        self.cache.stop_background_refresh()
        self.join.close()
        self.redis.close()
        self.admin_redis.close()


class Artbandit:
    """`app.extensions["artbandit"]`: settings, metrics, and the lazily created per-process state."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.offpolicy = OffPolicyPanel()  # the title page's off-policy estimates, cached ~30 s per title
        self._lock = threading.Lock()
        self._state: _ProcessState | None = None

    def _process(self) -> _ProcessState:
        state = self._state
        if state is not None and state.pid == os.getpid():
            return state
        with self._lock:
            state = self._state
            if state is None or state.pid != os.getpid():
                # a state inherited through fork() shares sockets with the parent: drop it, never use it
                state = self._state = _ProcessState.create(self.settings)
        return state

    @property
    def redis(self) -> Client:
        return self._process().redis

    @property
    def admin_redis(self) -> Client:
        return self._process().admin_redis

    @property
    def cache(self) -> ModelCache:
        return self._process().cache

    @property
    def decider(self) -> Decider:
        return self._process().decider

    @property
    def join(self) -> RedisJoin:
        return self._process().join

    def after_fork(self) -> None:
        """Forget state created before a fork (the next use creates this process's own)."""
        self._state = None

    def close(self) -> None:
        with self._lock:
            if self._state is not None and self._state.pid == os.getpid():
                self._state.close()
            self._state = None

    # ----------------------------------------------------------------------------------- statistics
    def stats_for(self, title_id: str, now: float | None = None) -> dict[str, Any] | None:
        """The title's statistics document (`stats.title_stats`), None for an unknown title."""
        cfg = catalog.load_title(self.admin_redis, title_id)
        if cfg is None:
            return None
        return self._stats(cfg, time.time() if now is None else now, offpolicy=True, segments=True)

    def titles_overview(self, now: float | None = None) -> list[dict[str, Any]]:
        """One `stats.overview_row` per title: impressions, clicks, CTR, best variant, health."""
        at = time.time() if now is None else now
        rows = []
        for cfg in catalog.list_titles(self.admin_redis):
            doc = self._stats(cfg, at)
            rows.append({**stats.overview_row(doc), "trend": doc["trend"]})
        return rows

    def _stats(
        self, cfg: TitleConfig, now: float, offpolicy: bool = False, segments: bool = False
    ) -> dict[str, Any]:
        raw = dict(counters.raw_title_stats(self.admin_redis, cfg.title_id, now))
        if offpolicy:  # one title's page: not for every row of the overview
            raw.setdefault("offpolicy", self.offpolicy.rows(self.admin_redis, cfg))
            raw.setdefault("offpolicy_tuning", self.offpolicy.tuning(self.admin_redis, cfg))
        raw.setdefault("name", cfg.name or cfg.title_id)
        raw.setdefault("artwork_meta", {a.id: {"image_url": a.image_url} for a in cfg.artworks})
        raw.setdefault("attribution_window_s", self.settings.attribution_window)
        experiment = {
            "control": cfg.control,
            "variants": [v.model_dump(mode="json") for v in cfg.variants],
        }
        doc = stats.title_stats(raw, experiment, now)
        return self._insights(doc, raw, cfg, now, segments)

    def _insights(
        self, doc: dict[str, Any], raw: dict[str, Any], cfg: TitleConfig, now: float, with_segments: bool
    ) -> dict[str, Any]:
        """Add the trend (always) and the segment section (one title's page and /stats only: one more
        read) to a `title_stats` document."""
        doc["trend"] = trends.trend(raw.get("series", []), now)
        methods = {**doc["methods"], **trends.METHODS}
        if with_segments:
            segmenter = cfg.segmenter
            raw["segments"] = counters.raw_segments(self.admin_redis, cfg.title_id)
            raw["segment_rule"] = {**segmenter.describe(), "names": segmenter.names()}
            doc["segments"] = segments.section(
                raw, [a["artwork"] for a in doc["artworks"]], [v["variant"] for v in doc["variants"]]
            )
            methods.update(segments.METHODS)
        doc["methods"] = methods
        return doc

    def store_health(self) -> dict[str, dict[str, Any]]:
        """Per title: learner lag, snapshot age, versions and join outcomes (for /metrics)."""
        return read_store_health(self.admin_redis)

    # ------------------------------------------------------------------------------------- start-up
    def warm_up(self) -> None:
        """Connect and load every title's policies now rather than on the first requests (gunicorn's
        post_worker_init), then keep them fresh from a background thread (`ModelCache.refresh_in_background`).
        A store that is down is logged; requests then get the fallback until it is back."""
        self.cache.refresh_in_background()
        try:
            for title_id in catalog.title_ids(self.admin_redis):
                cfg = self.cache.title(title_id)
                if cfg is None:  # deleted meanwhile
                    continue
                for variant in cfg.variants:
                    self.cache.policy(cfg, variant.name)
        except (RedisError, ArtbanditError) as exc:
            log.warning("warm-up skipped, the store did not answer: %s", exc)
