"""The join rule of `service/join/rule.py`, executed atomically inside Redis (`service/store/lua/`).

- `impress` (impress.lua) logs the decision record and opens the impression's join entry in one script.
- `click` (click.lua): the first click at or before the deadline marks the impression rewarded (its label,
  1, is emitted at the deadline); later clicks are "duplicate" or "late"; a click on a pending impression
  past its deadline first expires it (emits its label), then is judged "late" or "duplicate".
- `reward` (click.lua, which `click` calls with value 1): graded rewards under the title's rule
  (`RewardSpec`: first | sum | max, clipped), event-id dedupe; a reward on a deferred impression
  activates it first.
- `activate` (activate.lua): deferred impressions (`impress(defer=True)`) are logged but count nowhere
  until activated; the window starts at activation.
- `expire` (due.lua, then expire.lua): labels for pending impressions past their deadline, and
  `never_shown` for deferred ones never activated (no label).

Whichever script removes an id from the pending set emits its one labelled event, so every impression
is labelled exactly once whatever the interleaving. Times are epoch seconds; `now=None` means the Redis
server's clock (TIME), so every worker and the learner judge deadlines on the same clock.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis
from redis.cluster import RedisCluster

from service.catalog import RewardSpec
from service.config import Settings
from service.errors import StoreUnavailable
from service.join.rule import Activation, ClickOutcome
from service.store import keys
from service.store.clients import UNAVAILABLE, CircuitBreaker, Client, load_script, trips_breaker
from service.store.cluster_scripts import ClusterScriptRunner
from service.store.records import DecisionRecord
from service.store.scripts import Arg, ScriptCall, ScriptRunner

log = logging.getLogger(__name__)

MINUTE_COUNTER_SLACK = 120  # seconds minute counters outlive the impressions counted in them


def time_arg(now: float | None) -> str:
    """A time for a script: '' (the server's TIME) or the exact float as text."""
    if now is None:
        return ""
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, got {now!r}")
    return repr(float(now))


def _segment_fields(record: DecisionRecord, segment: str | None) -> tuple[str, str]:
    if segment is None:
        return "", ""
    return (
        keys.segment_impressions_field(record.variant, segment, record.chosen),
        keys.segment_clicks_field(record.variant, segment, record.chosen),
    )


class ImpressItem(NamedTuple):
    """One decision of a batch for `RedisJoin.impress_many`: `impress`'s arguments."""

    record: DecisionRecord
    ref: keys.ImpressionRef | None = None
    segment: str | None = None
    defer: bool = False
    reward: RewardSpec | None = None


def _impress_error(record: DecisionRecord, exc: redis.ResponseError) -> Exception:
    if "impression id already used" in str(exc):
        return ValueError(f"impression id {record.event_id!r} was already used")
    return exc


class RedisJoin:
    def __init__(self, r: Client, settings: Settings, breaker: CircuitBreaker | None = None) -> None:
        self.r = r
        self.settings = settings
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._impress = load_script(r, "impress")
        self._click = load_script(r, "click")
        self._due = load_script(r, "due")
        self._expire = load_script(r, "expire")
        self._activate = load_script(r, "activate")
        # impress, click (rewards) and activate, the calls on the request path: one combined connection
        # per worker, or one per master node on a cluster
        self._wire: ScriptRunner | ClusterScriptRunner = (
            ClusterScriptRunner(r) if isinstance(r, RedisCluster) else ScriptRunner(r)
        )
        self.impression_ttl = math.ceil(settings.attribution_window + settings.retention_seconds)
        self.minute_ttl = self.impression_ttl + MINUTE_COUNTER_SLACK

    def close(self) -> None:
        """Close the request-path connections (the client's own pool is the caller's to close)."""
        self._wire.close()

    # ----------------------------------------------------------------- impressions
    def impress(
        self,
        record: DecisionRecord,
        ref: keys.ImpressionRef | None = None,
        segment: str | None = None,
        defer: bool = False,
        reward: RewardSpec | None = None,
    ) -> None:
        """Log a decision and open its join entry (one round trip). Redis errors propagate: the caller
        decides between degrading and failing. `record.event_id` must come from `keys.new_impression_id`;
        `ref`, its parts from `keys.new_impression`, spares parsing it again. `segment`: the viewer's taste
        segment (service/segments.py), counted with the decision and its click; None counts no segment
        (the `Decider` always gives one). `defer`: logged, but shown (counted, labelled, learned) only once
        activated. `reward`: the title's reward rule (None: clicks)."""
        script, call_keys, args = self.impress_call(record, ref, segment, defer, reward)
        try:
            self._wire.run(script, call_keys, args)
        except redis.ResponseError as exc:
            raise _impress_error(record, exc) from exc

    def impress_many(self, items: Sequence[ImpressItem | tuple[Any, ...]]) -> list[Exception | None]:
        """Log several decisions (a page of titles), each an `ImpressItem` (or a tuple of its fields in
        order: record, ref, segment, defer, reward): one batch per Redis node, the nodes in parallel. Each
        entry is None (logged) or the error that record met (returned, not raised): a dead shard fails
        only its own titles."""
        calls = [self.impress_call(*item) for item in items]
        out: list[Exception | None] = []
        for item, result in zip(items, self._wire.run_many(calls), strict=True):
            if isinstance(result, redis.ResponseError):
                out.append(_impress_error(item[0], result))
            elif isinstance(result, Exception):
                out.append(result)
            else:
                out.append(None)
        return out

    def impress_call(
        self,
        record: DecisionRecord,
        ref: keys.ImpressionRef | None = None,
        segment: str | None = None,
        defer: bool = False,
        reward: RewardSpec | None = None,
    ) -> ScriptCall:
        """The impress.lua call (script, keys, args) that logs `record`, for `impress` and batches."""
        if ref is None:
            ref = keys.parse_impression_id(record.event_id)
        if ref is None or ref.title_id != record.title_id:
            raise ValueError(f"event_id {record.event_id!r} is not an impression id of {record.title_id!r}")
        if defer != record.deferred:  # the logged record says whether it was deferred
            record = dataclasses.replace(record, deferred=defer)
        title = record.title_id
        deadline = record.decided_at + self.settings.attribution_window
        rule: list[Arg] = (
            ["", "", ""] if reward is None else [reward.aggregate, repr(reward.min), repr(reward.max)]
        )
        return (
            self._impress,
            [
                keys.decisions_stream(title),
                keys.impression(ref),
                keys.pending(title),
                keys.join_counters(title),
                keys.minute_counters(title, ref.minute),
                keys.totals(title),
                keys.variant_users(title, record.variant),
                keys.segment_counters(title),
            ],
            [
                record.event_id,
                time_arg(deadline),
                record.to_json(),
                record.label_json(),
                keys.impressions_field(record.variant, record.chosen),
                keys.clicks_field(record.variant, record.chosen),
                self.settings.retention_events,
                self.impression_ttl,
                self.minute_ttl,
                record.user_id,
                "1" if defer else "",
                *rule,
                *_segment_fields(record, segment),
            ],
        )

    # ----------------------------------------------------------------- clicks and rewards
    def click(self, impression_id: str, now: float | None = None) -> ClickOutcome:
        """Classify a click and, for the first in-window one, mark the impression rewarded (value 1; the
        label is emitted at the deadline). Raises StoreUnavailable when Redis cannot be reached (or was
        unreachable a moment ago)."""
        return self.reward(impression_id, None, None, now)

    def reward(
        self, impression_id: str, value: float | None, event_id: str | None = None, now: float | None = None
    ) -> ClickOutcome:
        """Record a graded reward (`value` None: a click) under the title's reward rule (click.lua).
        A reward on a deferred impression activates it first. Raises StoreUnavailable as `click`."""
        if value is not None and not math.isfinite(value):
            raise ValueError(f"a reward must be a finite number, got {value!r}")
        if not self.breaker.available():
            raise StoreUnavailable()
        ref = keys.parse_impression_id(impression_id)
        try:
            if ref is None:
                self.r.incr(keys.unknown_clicks())
                return ClickOutcome.UNKNOWN
            title = ref.title_id
            outcome = self._wire.run(
                self._click,
                keys=[
                    keys.impression(ref),
                    keys.pending(title),
                    keys.labelled_stream(title),
                    keys.join_counters(title),
                    keys.minute_counters(title, ref.minute),
                    keys.totals(title),
                    keys.segment_counters(title),
                    keys.clicks_stream(title),
                ],
                args=[
                    impression_id,
                    time_arg(now),
                    self.settings.retention_events,
                    "" if value is None else repr(float(value)),
                    event_id or "",
                    repr(float(self.settings.attribution_window)),
                    self.impression_ttl,
                    self.minute_ttl,
                ],
            )
            if outcome == b"untracked":
                self.r.incr(keys.unknown_clicks())
                return ClickOutcome.UNKNOWN
        except UNAVAILABLE as exc:
            if trips_breaker(self.r):
                self.breaker.failed()
            log.warning("reward not recorded, Redis unavailable: %s", exc)
            raise StoreUnavailable() from exc
        return ClickOutcome(outcome.decode())

    # ----------------------------------------------------------------- deferred activation
    def activate(self, impression_ids: Sequence[str], now: float | None = None) -> dict[str, Activation]:
        """Show deferred impressions: one activate.lua call per title, all in one round trip. Ids that do
        not parse are `unknown`; an id given twice is answered once. Raises StoreUnavailable as `click`."""
        if not self.breaker.available():
            raise StoreUnavailable()
        results: dict[str, Activation] = {}
        by_title: dict[str, list[keys.ImpressionRef]] = {}
        for impression_id in dict.fromkeys(impression_ids):
            ref = keys.parse_impression_id(impression_id)
            if ref is None:
                results[impression_id] = Activation.UNKNOWN
            else:
                by_title.setdefault(ref.title_id, []).append(ref)
        calls = []
        for title, refs in by_title.items():
            call_keys = [keys.pending(title), keys.join_counters(title), keys.totals(title)]
            call_keys.append(keys.segment_counters(title))
            for ref in refs:
                call_keys += [keys.impression(ref), keys.minute_counters(title, ref.minute)]
            window = repr(float(self.settings.attribution_window))
            args: list[Arg] = [time_arg(now), window, self.impression_ttl, self.minute_ttl]
            args += [ref.impression_id for ref in refs]
            calls.append((self._activate, call_keys, args))
        try:
            replies = self._wire.run_many(calls) if calls else []
        except UNAVAILABLE as exc:
            if trips_breaker(self.r):
                self.breaker.failed()
            log.warning("activation not recorded, Redis unavailable: %s", exc)
            raise StoreUnavailable() from exc
        for refs, reply in zip(by_title.values(), replies, strict=True):
            if isinstance(reply, UNAVAILABLE):
                if trips_breaker(self.r):
                    self.breaker.failed()
                raise StoreUnavailable() from reply
            if isinstance(reply, BaseException):
                raise reply
            for ref, status in zip(refs, reply, strict=True):
                results[ref.impression_id] = Activation(status.decode())
        return {i: results[i] for i in impression_ids}

    # ----------------------------------------------------------------- expiry sweep
    def expire(self, title_id: str, now: float | None = None, limit: int = 1000) -> int:
        """Finish up to `limit` pending impressions of a title whose deadline is before `now` (earliest
        first): label each shown one with its reward (0 if unrewarded, clipped), count each deferred one
        never activated `never_shown`. Returns how many were labelled."""
        return self._expire_batch(title_id, now, limit)[1]

    def expire_all(
        self, title_id: str, now: float | None = None, limit: int = 1000, max_rounds: int = 100
    ) -> int:
        """Sweep in batches of `limit` until nothing due is left (or `max_rounds` batches). Returns the
        number of labels emitted."""
        return self.sweep(title_id, now, limit, max_rounds)[0]

    def sweep(
        self, title_id: str, now: float | None = None, limit: int = 1000, max_rounds: int = 100
    ) -> tuple[int, bool]:
        """`expire_all`, and whether it stopped at `max_rounds` with more possibly due:
        (labels emitted, behind)."""
        total = 0
        for _ in range(max_rounds):
            found, emitted = self._expire_batch(title_id, now, limit)
            total += emitted
            if found < limit:
                return total, False
        return total, True

    def _expire_batch(self, title_id: str, now: float | None, limit: int) -> tuple[int, int]:
        """(ids found due, labels emitted)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        found = self._due(keys=[keys.pending(title_id)], args=[time_arg(now), limit])
        now_text, ids = found[0], found[1:]
        if not ids:
            return 0, 0
        impression_keys = []
        for raw in ids:
            ref = keys.parse_impression_id(raw.decode())
            if ref is None or ref.title_id != title_id:  # only impress.lua writes the set: a bug or tampering
                raise ValueError(f"pending set of {title_id!r} holds a foreign id {raw!r}")
            impression_keys.append(keys.impression(ref))
        emitted = self._expire(
            keys=[keys.pending(title_id), keys.labelled_stream(title_id), keys.join_counters(title_id)]
            + impression_keys
            + [keys.totals(title_id)],
            args=[now_text, self.settings.retention_events, *ids],
        )
        return len(ids), int(emitted)
