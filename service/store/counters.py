"""Reading the counters the scripts move: per-title totals, per-minute series, join outcomes, learner
health. The shape of `raw_title_stats` is what `service/reporting/stats.py` builds the dashboard on.

Clicks here are "recorded" clicks only, attributed to the impression's variant, artwork and decision
minute. Learner lag is the number of labelled events emitted but not yet included in a snapshot.
"""

from __future__ import annotations

import time
from typing import Any, cast

from service.store import catalog, keys
from service.store.clients import Client

JOIN_OUTCOMES = ("clicked", "defaulted", "late", "duplicate", "unknown", "lost", "never_shown")
# Deferred impressions (POST /impressions with defer): decided, activated, or never shown. Those still
# waiting for activation sit in the pending set with their activation deadline but are not "pending".
DEFERRAL_COUNTERS = ("deferred", "activated", "never_shown")
_KINDS = {"i": "impressions", "c": "clicks", "r": "reward_sum", "n": "labelled"}
_VERSION = keys.snapshot_version_field("")


def raw_title_stats(
    r: Client, title_id: str, now: float | None = None, minutes: int = 120
) -> dict[str, Any]:
    """Counters of one title; `series` covers the `minutes` epoch minutes up to `now` (default: now)."""
    if minutes < 1:
        raise ValueError(f"minutes must be >= 1, got {minutes!r}")
    now = time.time() if now is None else now
    last = keys.epoch_minute(now)
    window = list(range(last - minutes + 1, last + 1))
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.totals(title_id))
    pipe.hgetall(keys.join_counters(title_id))
    pipe.zcard(keys.pending(title_id))
    for minute in window:
        pipe.hgetall(keys.minute_counters(title_id, minute))
    totals, join, pending, *per_minute = pipe.execute()
    learner = _learner(r, title_id, now)

    variants: dict[str, Any] = {}
    for (kind, variant, artwork), count in _counters(totals):
        v = variants.setdefault(variant, {"impressions": 0, "clicks": 0, "artworks": {}})
        a = v["artworks"].setdefault(artwork, {"impressions": 0, "clicks": 0})
        v[kind] = v.get(kind, 0) + count  # reward_sum / labelled only for titles with a reward config
        a[kind] = a.get(kind, 0) + count

    if variants:  # distinct viewers per variant: the sample-ratio check's unit (viewers are sticky)
        pipe = r.pipeline(transaction=False)
        for variant in variants:
            # by name: redis-py's cluster pipeline blocks its `pfcount` method (PFCOUNT may take several
            # keys); one key routes like any other
            pipe.execute_command("PFCOUNT", keys.variant_users(title_id, variant))
        for variant, users in zip(variants, pipe.execute(), strict=True):
            variants[variant]["users"] = int(users)

    series = []
    for minute, counters in zip(window, per_minute, strict=True):
        cells: dict[tuple[str, str], dict[str, int]] = {}
        for (kind, variant, artwork), count in _counters(counters):
            if kind not in ("impressions", "clicks"):
                continue
            cells.setdefault((variant, artwork), {"impressions": 0, "clicks": 0})[kind] += int(count)
        for (variant, artwork), c in sorted(cells.items()):
            series.append({"minute": minute, "variant": variant, "artwork": artwork, **c})

    return {
        "title_id": title_id,
        "variants": variants,
        "series": series,
        "join": {
            "pending": int(pending) - awaiting_activation(join),
            **{k: _int(join.get(k.encode())) for k in JOIN_OUTCOMES},
        },
        "learner": learner,
    }


def learner_health(r: Client, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per catalog title: {"lag": events not yet in a snapshot, "snapshot_age_s": seconds since the last
    publication (None: never), "versions": {variant: published version}, "throttled": events over their
    viewer's cap, consumed and not learned, as of the snapshot}. Two round trips in all."""
    now = time.time() if now is None else now
    titles = catalog.title_ids(r)
    return dict(zip(titles, _learner_many(r, titles, now), strict=True))


def _learner(r: Client, title_id: str, now: float) -> dict[str, Any]:
    return _learner_many(r, [title_id], now)[0]


def _learner_many(r: Client, titles: list[str], now: float) -> list[dict[str, Any]]:
    pipe = r.pipeline(transaction=False)
    for title_id in titles:
        pipe.hget(keys.join_counters(title_id), "labelled")
        pipe.hkeys(keys.snapshot(title_id))
    first = pipe.execute()
    variants: list[list[str]] = []
    for title_id, fields in zip(titles, first[1::2], strict=True):
        names = [f.decode() for f in fields]
        variants.append([f[len(_VERSION) :] for f in names if f.startswith(_VERSION)])
        pipe.hmget(
            keys.snapshot(title_id),
            ["consumed", "published_at", "throttled", *(_VERSION + v for v in variants[-1])],
        )
    out = []
    for labelled, names, (consumed, published_at, throttled, *versions) in zip(
        first[0::2], variants, pipe.execute(), strict=True
    ):
        out.append(
            {
                "lag": max(0, _int(labelled) - _int(consumed)),
                "snapshot_age_s": None if published_at is None else max(0.0, now - float(published_at)),
                "versions": {v: _int(x) for v, x in zip(names, versions, strict=True)},
                "throttled": _int(throttled),
            }
        )
    return out


def awaiting_activation(join: dict[bytes, bytes]) -> int:
    """Deferred impressions neither activated nor counted never_shown yet (from the join counters)."""
    deferred, activated, never_shown = (_int(join.get(k.encode())) for k in DEFERRAL_COUNTERS)
    return max(0, deferred - activated - never_shown)


def _counters(fields: dict[bytes, bytes]) -> list[tuple[tuple[str, str, str], float]]:
    """`i|variant|artwork` / `c|…` / `r|…` / `n|…` fields -> ((kind, variant, artwork), count): kinds
    impressions, clicks, reward_sum (a float: the sum of labels) and labelled (impressions labelled)."""
    out: list[tuple[tuple[str, str, str], float]] = []
    for name, value in fields.items():
        kind, variant, artwork = name.decode().split("|", 2)
        out.append(((_KINDS[kind], variant, artwork), float(value) if kind == "r" else int(value)))
    return out


def _int(raw: bytes | str | int | None) -> int:
    return 0 if raw is None else int(raw)


# ------------------------------------------------------------------------------- segment counters
def raw_segments(r: Client, title_id: str) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """The segment counters of a title (one HGETALL of a hash bounded per title, service/segments.py):
    {variant: {segment: {artwork: {"impressions": int, "clicks": int}}}}."""
    out: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    fields = cast(dict[bytes, bytes], r.hgetall(keys.segment_counters(title_id)))
    for name, value in fields.items():
        kind, variant, rest = name.decode().split("|", 2)
        segment, artwork = rest.rsplit("|", 1)
        cell = out.setdefault(variant, {}).setdefault(segment, {}).setdefault(
            artwork, {"impressions": 0, "clicks": 0}
        )
        cell["impressions" if kind == "i" else "clicks"] += int(value)
    return out
