"""The overview's trends: each title's impressions and CTR over the last hour, and a `rising` mark.

Sparklines cover the `HOUR` complete epoch minutes before the current one (the current minute is still
filling): impressions per minute, and CTR per `CTR_BUCKET`-minute bucket (per-minute CTR of a modest title is
mostly noise). CTR is by decision minute, so its newest buckets run low while their attribution window is
open (the title page shades that region).

`rising` is about traffic, not CTR — the last minutes' CTR is still provisional, their impressions are not:
a title is rising when its impression rate over the last `RECENT` complete minutes is, with 95% confidence,
at least `RISE_FACTOR` times its rate over the `HOUR` minutes before them. Given the n impressions of the
whole 70 minutes, the recent ones are binomial with share q; the rate ratio is
(q / RECENT) / ((1 - q) / HOUR), so the rule is: the Wilson 95% lower bound of q exceeds
q* = RISE_FACTOR·RECENT / (RISE_FACTOR·RECENT + HOUR) (0.2 with the defaults), and the last minutes hold
at least `MIN_RECENT` impressions (the Wilson bound is a little generous at a handful of counts: 3 recent
against 2 earlier would pass). A title with no impressions in the earlier hour is `new`, not rising.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service.reporting.stats import wilson_interval

HOUR = 60
RECENT = 10
RISE_FACTOR = 1.5
CTR_BUCKET = 5
MIN_RECENT = 30
RISE_SHARE = RISE_FACTOR * RECENT / (RISE_FACTOR * RECENT + HOUR)

METHODS = {
    "rising": f"impressions over the last {RECENT} complete minutes at least {RISE_FACTOR:g}x the rate of"
    f" the {HOUR} minutes before, with 95% confidence (Wilson lower bound of the recent share"
    f" > {RISE_SHARE:.2f}),"
    f" and at least {MIN_RECENT} recent impressions",
}


def trend(series: Iterable[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """{"from_minute", "impressions": [HOUR ints], "clicks": [HOUR ints], "ctr_bucket_minutes",
    "ctr": [HOUR / CTR_BUCKET floats | None], "recent": {impressions, per_minute}, "previous": {...},
    "rising": bool, "new": bool} from the raw per-minute series rows (any variant and artwork)."""
    now_minute = int(now // 60)
    start = now_minute - HOUR  # the sparkline: minutes start .. now_minute - 1
    prev_start = now_minute - RECENT - HOUR  # the rule: [prev_start, now_minute - RECENT) vs the rest
    imp, clk = [0] * HOUR, [0] * HOUR
    recent = previous = 0
    for row in series:
        m, n = int(row["minute"]), int(row["impressions"])
        if start <= m < now_minute:
            imp[m - start] += n
            clk[m - start] += int(row["clicks"])
        if now_minute - RECENT <= m < now_minute:
            recent += n
        elif prev_start <= m < now_minute - RECENT:
            previous += n
    ctr = []
    for b in range(0, HOUR, CTR_BUCKET):
        n, x = sum(imp[b : b + CTR_BUCKET]), sum(clk[b : b + CTR_BUCKET])
        ctr.append(x / n if n else None)
    return {
        "from_minute": start, "impressions": imp, "clicks": clk, "ctr_bucket_minutes": CTR_BUCKET, "ctr": ctr,
        "recent": {"minutes": RECENT, "impressions": recent, "per_minute": recent / RECENT},
        "previous": {"minutes": HOUR, "impressions": previous, "per_minute": previous / HOUR},
        "rising": is_rising(recent, previous), "new": previous == 0 and recent > 0,
    }


def is_rising(recent: int, previous: int) -> bool:
    """The rule of the module docstring: recent impressions (RECENT minutes) vs the HOUR minutes before."""
    if recent < 0 or previous < 0:
        raise ValueError(f"impression counts must be >= 0, got {recent!r}, {previous!r}")
    if previous == 0 or recent < MIN_RECENT:
        return False
    ci = wilson_interval(recent, recent + previous)
    return ci is not None and ci[0] > RISE_SHARE
