"""An API worker's in-memory title configs and policy snapshots.

Requests never load a model: they use the policy held here. At most every `refresh_interval` seconds
one pipelined round trip reads the catalog version and the published version of every cached
(title, variant); only what changed is fetched and swapped in. Under gunicorn a daemon thread of the
worker does that (`refresh_in_background`, started by `Artbandit.warm_up`), so no request waits while
changed snapshots load: the cost grows with the catalog (~0.12 ms of CPU per LinUCB snapshot of 8 arms
× 9 features, so ~0.1 s for 1,000 titles that all learned since the last check). Elsewhere, and whenever
that thread is not running, the request that finds a check due makes it. Before the learner has published a
variant, the worker serves a fresh policy built from the config (version 0). Every policy is reseeded
with this process's own entropy, so workers sharing one learned model do not draw the same arms.

When Redis fails, the shared circuit breaker opens and the cache keeps serving what it holds.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from policies import Policy, load_policy
from service.catalog import TitleConfig, build_policy, fit_arms, reseed, spec_fingerprint
from service.config import Settings
from service.errors import StoreUnavailable
from service.store import catalog, keys
from service.store.clients import UNAVAILABLE, CircuitBreaker, Client, trips_breaker

log = logging.getLogger(__name__)

MISSING_TTL = 1.0  # seconds an unknown title id is remembered as unknown
MAX_MISSING = 10_000


@dataclass
class _Title:
    cfg: TitleConfig
    raw: bytes


@dataclass
class _Model:
    policy: Policy
    version: int
    fingerprint: str
    cfg: TitleConfig  # the config the policy's arms were last fitted to
    seen: int = -1  # the last published version looked at (a snapshot of another spec is not served)


class ModelCache:
    def __init__(
        self,
        r: Client,
        settings: Settings,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        """`seed` makes this worker's draws reproducible (tests); by default every policy it holds gets
        fresh OS entropy."""
        self.r = r
        self.settings = settings
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._clock = clock
        self._seeds = random.Random(seed) if seed is not None else None
        self._titles: dict[str, _Title] = {}
        self._missing: dict[str, float] = {}  # title id -> remembered as unknown until (clock)
        self._models: dict[tuple[str, str], _Model] = {}
        self._catalog_version: int | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        self._stop_refresher = threading.Event()
        self._refresh_failing = False  # the last refresh met an unavailable Redis (logged once per outage)
        self.swaps = 0  # snapshots swapped in since start

    # ----------------------------------------------------------------- titles
    def title(self, title_id: str) -> TitleConfig | None:
        """The title's config, or None if the catalog has no such title. Raises StoreUnavailable only
        when Redis is unreachable and this worker has never seen the title."""
        self.refresh_if_due()
        held = self._titles.get(title_id)
        if held is not None:
            return held.cfg
        if self._missing.get(title_id, -1.0) > self._clock():
            return None
        if not self.breaker.available():
            raise StoreUnavailable()
        try:
            raw: bytes | None = self.r.hget(keys.catalog(), title_id)  # type: ignore[assignment]
        except UNAVAILABLE as exc:
            self._failed()
            log.warning("cannot load title %r, Redis unavailable: %s", title_id, exc)
            raise StoreUnavailable() from exc
        if raw is None:
            if len(self._missing) >= MAX_MISSING:
                self._missing.clear()
            self._missing[title_id] = self._clock() + MISSING_TTL
            return None
        cfg = catalog.parse_stored(title_id, raw)
        self._titles[title_id] = _Title(cfg, raw)
        return cfg

    def titles(self, title_ids: Sequence[str]) -> list[TitleConfig | None]:
        """`title` for several titles (a page); the ones this worker does not hold yet are fetched in one
        HMGET. Raises StoreUnavailable only when Redis is unreachable and some title was never seen."""
        self.refresh_if_due()
        wanted = [
            t for t in dict.fromkeys(title_ids)
            if t not in self._titles and self._missing.get(t, -1.0) <= self._clock()
        ]  # fmt: skip
        if wanted:
            if not self.breaker.available():
                raise StoreUnavailable()
            try:
                raws: list[bytes | None] = self.r.hmget(keys.catalog(), wanted)  # type: ignore[assignment]
            except UNAVAILABLE as exc:
                self.breaker.failed()
                log.warning("cannot load titles, Redis unavailable: %s", exc)
                raise StoreUnavailable() from exc
            for title_id, raw in zip(wanted, raws, strict=True):
                if raw is None:
                    if len(self._missing) >= MAX_MISSING:
                        self._missing.clear()
                    self._missing[title_id] = self._clock() + MISSING_TTL
                else:
                    self._titles[title_id] = _Title(catalog.parse_stored(title_id, raw), raw)
        out: list[TitleConfig | None] = []
        for title_id in title_ids:
            held = self._titles.get(title_id)
            out.append(None if held is None else held.cfg)
        return out

    def cached_title(self, title_id: str) -> TitleConfig | None:
        """The config this worker holds, without touching Redis."""
        held = self._titles.get(title_id)
        return None if held is None else held.cfg

    def _failed(self) -> None:
        if trips_breaker(self.r):  # on a cluster one shard's failure leaves the others' titles alone
            self.breaker.failed()

    # ----------------------------------------------------------------- policies
    def policy(self, cfg: TitleConfig, variant: str) -> tuple[Policy, int]:
        """The policy serving (title, variant) and its published version (0: fresh, nothing learned)."""
        model = self._models.get((cfg.title_id, variant))
        if model is not None and model.cfg is cfg:
            return model.policy, model.version
        return self._prepare(cfg, variant, model)

    def _prepare(self, cfg: TitleConfig, variant: str, model: _Model | None) -> tuple[Policy, int]:
        fingerprint = spec_fingerprint(cfg, variant)
        if model is None or model.fingerprint != fingerprint:
            model = self._initial(cfg, variant, fingerprint)
        fit_arms(model.policy, cfg)
        model.cfg = cfg
        self._models[(cfg.title_id, variant)] = model
        return model.policy, model.version

    def _initial(self, cfg: TitleConfig, variant: str, fingerprint: str) -> _Model:
        """The published snapshot if it matches the current spec, else a fresh policy (version 0)."""
        if self.breaker.available():
            try:
                loaded = self._fetch([(cfg.title_id, variant)]).get((cfg.title_id, variant))
            except UNAVAILABLE as exc:
                self._failed()
                log.warning("fresh policy for %s/%s, Redis unavailable: %s", cfg.title_id, variant, exc)
                loaded = None
            if loaded is not None and loaded[2] == fingerprint:
                return _Model(loaded[0], loaded[1], fingerprint, cfg)
        fresh = build_policy(cfg, variant, seed=self._next_seed())
        return _Model(fresh, 0, fingerprint, cfg)

    def _fetch(self, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[Policy, int, str]]:
        """Published (policy, version, spec fingerprint) of (title, variant) pairs, in one round trip;
        pairs with nothing published are left out."""
        pipe = self.r.pipeline(transaction=False)
        for title_id, v in wanted:
            pipe.hmget(
                keys.snapshot(title_id),
                [keys.snapshot_bytes_field(v), keys.snapshot_version_field(v), keys.snapshot_spec_field(v)],
            )
        out = {}
        for key, (data, version, spec) in zip(wanted, pipe.execute(), strict=True):
            if data is None or version is None or spec is None:
                continue
            try:
                policy = load_policy(data)
            except ValueError:
                log.exception("snapshot %s of %s/%s does not load; not serving it", version, *key)
                continue
            reseed(policy, self._next_seed())
            out[key] = (policy, int(version), spec.decode())
        return out

    def _next_seed(self) -> int:
        return self._seeds.getrandbits(63) if self._seeds is not None else secrets.randbits(63)

    # ----------------------------------------------------------------- refresh
    def refresh_if_due(self) -> None:
        """On the request path: refresh if a check is due and no background refresher is running."""
        refresher = self._refresher
        if refresher is not None and refresher.is_alive():
            return
        if self._clock() >= self._next_check:
            self.refresh()

    def refresh_in_background(self) -> threading.Thread:
        """Refresh every `refresh_interval` from a daemon thread of this process until
        `stop_background_refresh`; meanwhile requests no longer refresh. Start it in the process that
        serves (after forking). Idempotent while the thread runs."""
        with self._lock:
            if self._refresher is not None and self._refresher.is_alive():
                return self._refresher
            self._stop_refresher.clear()
            self._refresher = threading.Thread(
                target=self._refresh_loop, name="artbandit-model-refresh", daemon=True
            )
            self._refresher.start()
            return self._refresher

    def stop_background_refresh(self, timeout: float = 5.0) -> None:
        refresher = self._refresher
        self._stop_refresher.set()
        if refresher is not None and refresher is not threading.current_thread():
            refresher.join(timeout)
        self._refresher = None

    def _refresh_loop(self) -> None:
        while not self._stop_refresher.wait(self.settings.refresh_interval):
            try:
                self.refresh()
            except Exception:  # a bug, not Redis (refresh handles that): keep serving, keep checking
                log.exception("model refresh failed; the next check tries again")

    def refresh(self) -> None:
        """Check the catalog version and every cached model version in one round trip; fetch and swap
        what changed. Failures open the breaker and leave the cache as it was."""
        if not self._lock.acquire(blocking=False):
            return  # another thread is refreshing
        try:
            self._next_check = self._clock() + self.settings.refresh_interval
            if not self.breaker.available():
                return
            try:
                self._refresh()
            except UNAVAILABLE as exc:
                self._failed()
                if not self._refresh_failing:  # once per outage, not every interval
                    log.warning("model refresh skipped, Redis unavailable: %s", exc)
                self._refresh_failing = True
            else:
                if self._refresh_failing:
                    log.info("model refresh works again")
                self._refresh_failing = False
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        by_title: dict[str, list[str]] = {}
        for title_id, variant in self._models:
            by_title.setdefault(title_id, []).append(variant)
        pipe = self.r.pipeline(transaction=False)
        pipe.get(keys.catalog_version())
        for title_id, variants in by_title.items():
            pipe.hmget(keys.snapshot(title_id), [keys.snapshot_version_field(v) for v in variants])
        replies = pipe.execute()
        version = int(replies[0]) if replies[0] is not None else 0
        if version != self._catalog_version:
            self._reload_titles()
            self._catalog_version = version
        stale = []
        for (title_id, variants), published in zip(by_title.items(), replies[1:], strict=True):
            for v, raw in zip(variants, published, strict=True):
                model = self._models.get((title_id, v))
                if raw is not None and model is not None and int(raw) not in (model.version, model.seen):
                    stale.append((title_id, v))
        if not stale:
            return
        for key, (policy, ver, spec) in self._fetch(stale).items():
            model = self._models.get(key)
            if model is None:
                continue
            if spec != model.fingerprint:
                # published for another spec: serve ours until the learner catches up with the catalog
                model.seen = ver
                continue
            fit_arms(policy, model.cfg)
            self._models[key] = _Model(policy, ver, spec, model.cfg)
            self.swaps += 1

    def _reload_titles(self) -> None:
        self._missing.clear()
        ids = list(self._titles)
        if not ids:
            return
        raws: list[bytes | None] = self.r.hmget(keys.catalog(), ids)  # type: ignore[assignment]
        for title_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                del self._titles[title_id]
                for key in [k for k in self._models if k[0] == title_id]:
                    del self._models[key]
            elif raw != self._titles[title_id].raw:
                try:
                    cfg = catalog.parse_stored(title_id, raw)
                except ValueError:
                    log.exception("keeping the previous config of title %r", title_id)
                    continue
                self._titles[title_id] = _Title(cfg, raw)
                names = {v.name for v in cfg.variants}
                for key in [k for k in self._models if k[0] == title_id and k[1] not in names]:
                    del self._models[key]
