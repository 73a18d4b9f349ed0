"""The join rule of `service/join/rule.py`, executed atomically inside Redis (`service/store/lua/`).

- `impress` (impress.lua) logs the decision record and opens the impression's join entry in one script.
- `click` (click.lua): the first click at or before the deadline takes the impression off the pending set
  and emits the reward-1 labelled event; later clicks are "duplicate" or "late"; a click on a pending
  impression past its deadline first expires it (reward 0), then counts as "late".
- `expire` (due.lua, then expire.lua): reward-0 labels for pending impressions past their deadline.

Whichever script removes an id from the pending set emits its one labelled event, so every impression
is labelled exactly once whatever the interleaving. Times are epoch seconds; `now=None` means the Redis
server's clock (TIME), so every worker and the learner judge deadlines on the same clock.
"""

from __future__ import annotations

import logging
import math

import redis

from service.config import Settings
from service.errors import StoreUnavailable
from service.join.rule import ClickOutcome
from service.store import keys
from service.store.clients import UNAVAILABLE, CircuitBreaker, load_script
from service.store.records import DecisionRecord
from service.store.scripts import ScriptRunner

log = logging.getLogger(__name__)

MINUTE_COUNTER_SLACK = 120  # seconds minute counters outlive the impressions counted in them


def time_arg(now: float | None) -> str:
    """A time for a script: '' (the server's TIME) or the exact float as text."""
    if now is None:
        return ""
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, got {now!r}")
    return repr(float(now))


class RedisJoin:
    def __init__(self, r: redis.Redis, settings: Settings, breaker: CircuitBreaker | None = None) -> None:
        self.r = r
        self.settings = settings
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._impress = load_script(r, "impress")
        self._click = load_script(r, "click")
        self._due = load_script(r, "due")
        self._expire = load_script(r, "expire")
        self._wire = ScriptRunner(r)  # impress and click: the two calls on the request path
        self.impression_ttl = math.ceil(settings.attribution_window + settings.retention_seconds)
        self.minute_ttl = self.impression_ttl + MINUTE_COUNTER_SLACK

    def close(self) -> None:
        """Close the request-path connections (the client's own pool is the caller's to close)."""
        self._wire.close()

    # ----------------------------------------------------------------- impressions
    def impress(self, record: DecisionRecord, ref: keys.ImpressionRef | None = None) -> None:
        """Log a decision and open its join entry (one round trip). Redis errors propagate: the caller
        decides between degrading and failing. `record.event_id` must come from `keys.new_impression_id`;
        `ref`, its parts from `keys.new_impression`, spares parsing it again."""
        if ref is None:
            ref = keys.parse_impression_id(record.event_id)
        if ref is None or ref.title_id != record.title_id:
            raise ValueError(f"event_id {record.event_id!r} is not an impression id of {record.title_id!r}")
        title = record.title_id
        deadline = record.decided_at + self.settings.attribution_window
        try:
            self._wire.run(
                self._impress,
                keys=[
                    keys.decisions_stream(title),
                    keys.impression(ref),
                    keys.pending(title),
                    keys.join_counters(title),
                    keys.minute_counters(title, ref.minute),
                    keys.totals(title),
                    keys.variant_users(title, record.variant),
                ],
                args=[
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
                ],
            )
        except redis.ResponseError as exc:
            if "impression id already used" in str(exc):
                raise ValueError(f"impression id {record.event_id!r} was already used") from exc
            raise

    # ----------------------------------------------------------------- clicks
    def click(self, impression_id: str, now: float | None = None) -> ClickOutcome:
        """Classify a click and, for the first in-window one, emit the reward-1 label. Raises
        StoreUnavailable when Redis cannot be reached (or was unreachable a moment ago)."""
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
                    keys.clicks_stream(title),
                ],
                args=[impression_id, time_arg(now), self.settings.retention_events],
            )
            if outcome == b"untracked":
                self.r.incr(keys.unknown_clicks())
                return ClickOutcome.UNKNOWN
        except UNAVAILABLE as exc:
            self.breaker.failed()
            log.warning("click not recorded, Redis unavailable: %s", exc)
            raise StoreUnavailable() from exc
        return ClickOutcome(outcome.decode())

    # ----------------------------------------------------------------- expiry sweep
    def expire(self, title_id: str, now: float | None = None, limit: int = 1000) -> int:
        """Label reward 0 up to `limit` pending impressions of a title whose deadline is before `now`
        (earliest first). Returns how many were labelled."""
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
            + impression_keys,
            args=[now_text, self.settings.retention_events, *ids],
        )
        return len(ids), int(emitted)
