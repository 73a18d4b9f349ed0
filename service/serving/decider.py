"""Deciding one impression and logging it, in one Redis round trip.

`Decider.impression`: the title's config and the variant's policy come from the worker's `ModelCache`
(no per-request load); the viewer's variant is the sticky hash of `service/serving/experiments.py`; the policy
samples an artwork from its full probability vector; `RedisJoin.impress` logs the decision record and
opens the join entry in one script. If Redis fails (or failed less than a breaker cooldown ago) the
answer is the title's default artwork, marked `fallback=True` and not logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import redis

from policies import Decision, InvalidContext
from service.catalog import TitleConfig
from service.config import Settings
from service.errors import ArtbanditError, InvalidRequest, StoreUnavailable, UnknownTitle
from service.join.redis_join import ImpressItem, RedisJoin
from service.segments import Segmenter
from service.serving.experiments import assign_variant
from service.serving.model_cache import ModelCache
from service.store import keys
from service.store.clients import Client, trips_breaker
from service.store.records import DecisionRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImpressionResult:
    impression_id: str | None  # None for a fallback answer (nothing was logged, clicks cannot be joined)
    artwork_id: str
    propensity: float
    variant: str
    policy: str
    model_version: int
    fallback: bool


@dataclass(frozen=True)
class _Experiment:
    """What the hot path needs from a config, computed once per config object."""

    cfg: TitleConfig
    weights: list[tuple[str, float]]
    policy_names: dict[str, str]
    segmenter: Segmenter
    features: frozenset[str]


@dataclass(frozen=True)
class _Planned:
    """One title of a page, decided and waiting for the page's logging round trip."""

    index: int
    cfg: TitleConfig
    variant: str
    policy_name: str
    version: int
    record: DecisionRecord
    ref: keys.ImpressionRef
    segment: str | None


def _logged(
    cfg: TitleConfig,
    variant: str,
    user_id: str,
    context: Mapping[str, float],
    decision: Decision,
    version: int,
    policy_name: str,
    decided_at: float,
    deferred: bool = False,
) -> tuple[DecisionRecord, keys.ImpressionRef]:
    """A new impression id and the decision record to log under it (single impressions and pages)."""
    impression_id, ref = keys.new_impression(cfg.title_id, decided_at)
    record = DecisionRecord(
        event_id=impression_id,
        title_id=cfg.title_id,
        variant=variant,
        user_id=user_id,
        context=context,
        artworks=list(decision.probabilities),
        probabilities=list(decision.probabilities.values()),
        chosen=decision.arm,
        propensity=decision.propensity,
        model_version=version,
        policy=policy_name,
        decided_at=decided_at,
        deferred=deferred,
    )
    return record, ref


class Decider:
    def __init__(self, r: Client, cache: ModelCache, settings: Settings) -> None:
        self.cache = cache
        self.breaker = cache.breaker
        self.join = RedisJoin(r, settings, breaker=cache.breaker)
        self._experiments: dict[str, _Experiment] = {}
        self.fallbacks = 0
        # A worker's threads share its cached policies, and a policy may score through scratch buffers of
        # its own (LinUCB does) or be refitted to a changed catalog: one decision at a time per worker.
        # Deciding takes microseconds; the lock is never held across the logging round trip.
        self._deciding = threading.Lock()

    def impression(
        self, title_id: str, user_id: str, context: Mapping[str, float], now: float | None = None
    ) -> ImpressionResult:
        """Decide and log one impression. Raises UnknownTitle, InvalidRequest (bad context), or
        StoreUnavailable (Redis down and this worker never saw the title)."""
        decided_at = time.time() if now is None else now
        cfg = self.cache.title(title_id)
        if cfg is None:
            raise UnknownTitle(f"unknown title {title_id!r}")
        exp = self._experiment(cfg)
        if len(exp.weights) == 1:
            variant = exp.weights[0][0]
        else:
            variant = assign_variant(cfg.salt, user_id, exp.weights)
        try:
            with self._deciding:
                # under the lock too: after a catalog change, cache.policy fits the live policy's arms
                policy, version = self.cache.policy(cfg, variant)
                decision = policy.decide(context)
        except InvalidContext as exc:
            raise InvalidRequest(str(exc)) from exc
        policy_name = exp.policy_names[variant]
        if not self.breaker.available():
            return self._fallback(cfg, variant, policy_name, version)
        record, ref = _logged(cfg, variant, user_id, context, decision, version, policy_name, decided_at)
        impression_id = record.event_id
        try:
            self.join.impress(record, ref, segment=exp.segmenter.assign(context), reward=cfg.reward)
        except redis.RedisError as exc:
            if trips_breaker(self.join.r):
                self.breaker.failed()
            log.warning("impression of %r not logged, serving the default artwork: %r", title_id, exc)
            return self._fallback(cfg, variant, policy_name, version)
        return ImpressionResult(
            impression_id, decision.arm, decision.propensity, variant, policy_name, version, fallback=False
        )

    def page(
        self,
        user_id: str,
        context: Mapping[str, float],
        title_ids: Sequence[str],
        defer: bool = False,
        now: float | None = None,
    ) -> list[ImpressionResult | ArtbanditError]:
        """Decide a page: one result per title in order, or the title's own error (UnknownTitle; or
        StoreUnavailable for a title this worker never saw while Redis is down). Every title reads the
        context's features of its own schema and ignores the rest; a known feature with a value its policy
        refuses raises InvalidRequest for the whole page. All decisions are logged in one round trip per
        Redis node (`RedisJoin.impress_many`) before this returns; a title whose logging fails gets its
        default artwork (fallback, not logged), as `impression` does. `defer`: logged, shown only once
        activated."""
        decided_at = time.time() if now is None else now
        out: list[ImpressionResult | ArtbanditError | None] = [None] * len(title_ids)
        try:
            cfgs = self.cache.titles(title_ids)
        except StoreUnavailable as exc:
            cfgs = [self.cache.cached_title(t) for t in title_ids]
            for i, cfg in enumerate(cfgs):
                if cfg is None:
                    out[i] = exc
        chosen: list[tuple[int, TitleConfig, _Experiment, str]] = []
        for i, (title_id, cfg) in enumerate(zip(title_ids, cfgs, strict=True)):
            if cfg is None:
                if out[i] is None:
                    out[i] = UnknownTitle(f"unknown title {title_id!r}")
                continue
            exp = self._experiment(cfg)
            if len(exp.weights) == 1:
                variant = exp.weights[0][0]
            else:
                variant = assign_variant(cfg.salt, user_id, exp.weights)
            chosen.append((i, cfg, exp, variant))
        logged = self.breaker.available()
        planned: list[_Planned] = []
        with self._deciding:
            for i, cfg, exp, variant in chosen:
                ctx = {k: v for k, v in context.items() if k in exp.features}
                try:
                    policy, version = self.cache.policy(cfg, variant)
                    decision = policy.decide(ctx)
                except InvalidContext as exc:
                    raise InvalidRequest(f"title {cfg.title_id!r}: {exc}") from exc
                policy_name = exp.policy_names[variant]
                record, ref = _logged(
                    cfg, variant, user_id, ctx, decision, version, policy_name, decided_at, defer
                )
                segment = exp.segmenter.assign(ctx)
                planned.append(_Planned(i, cfg, variant, policy_name, version, record, ref, segment))
        errors: list[Exception | None] = [None] * len(planned)
        if logged and planned:
            items = [ImpressItem(p.record, p.ref, p.segment, defer, p.cfg.reward) for p in planned]
            try:
                errors = self.join.impress_many(items)  # per title: a dead shard fails only its titles
            except redis.RedisError as exc:
                errors = [exc] * len(planned)
            failed = [e for e in errors if e is not None]
            if failed:
                if trips_breaker(self.join.r) and any(isinstance(e, redis.RedisError) for e in failed):
                    self.breaker.failed()
                log.warning(
                    "%d of %d titles of a page not logged, serving their default artworks: %r",
                    len(failed), len(planned), failed[0],
                )
        for p, error in zip(planned, errors, strict=True):
            if logged and error is None:
                rec = p.record
                out[p.index] = ImpressionResult(
                    rec.event_id, rec.chosen, rec.propensity, p.variant, p.policy_name, p.version, False
                )
            else:
                out[p.index] = self._fallback(p.cfg, p.variant, p.policy_name, p.version)
        return cast(list[ImpressionResult | ArtbanditError], out)

    def _fallback(self, cfg: TitleConfig, variant: str, policy_name: str, version: int) -> ImpressionResult:
        self.fallbacks += 1
        return ImpressionResult(None, cfg.fallback_artwork, 1.0, variant, policy_name, version, True)

    def _experiment(self, cfg: TitleConfig) -> _Experiment:
        exp = self._experiments.get(cfg.title_id)
        if exp is None or exp.cfg is not cfg:
            variants = cfg.variants
            weights = [(v.name, v.weight) for v in variants]
            names = {v.name: v.policy.name for v in variants}
            exp = _Experiment(cfg, weights, names, cfg.segmenter, frozenset(cfg.features))
            self._experiments[cfg.title_id] = exp
        return exp
