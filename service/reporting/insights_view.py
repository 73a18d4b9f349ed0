"""View-models of the segment heatmap (title page) and the trend sparklines (overview), from the `segments`
and `trend` sections of a statistics document (`service/reporting/segments.py`, `trends.py`).

Like `dashboard.py`: numbers are formatted and SVG paths computed here; the templates only lay them out and
Jinja escapes every string (segment names can be any feature name, hostile ones included). The page's CSP
forbids inline styles, so a heatmap cell's shade is one of `LEVELS` classes (`h0`..`h9`), not a style.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from service.reporting.dashboard import PALETTE, count, local_image, pct, pct_interval

LEVELS = 10  # heatmap shades: share of the segment's impressions, in tenths
SPARK_W, SPARK_H = 120, 28


def _level(share: float | None) -> int:
    return 0 if share is None else min(LEVELS - 1, int(share * LEVELS))


def _rule_text(rule: Mapping[str, Any] | None) -> str:
    if not rule:
        return "no segment rule"
    if rule.get("kind") == "rules":
        return "the title's segment rules, first match wins; unmatched viewers are 'other'"
    return (
        f"dominant taste: the largest context feature when it leads the next by at least {rule['margin']:g};"
        " 'mixed' otherwise, 'none' without any positive feature"
    )


def _table(
    table_id: str, label: str, rows: Sequence[Mapping[str, Any]], artworks: Sequence[str]
) -> dict[str, Any]:
    out_rows = []
    for r in rows:
        cells = []
        for c in r["cells"]:
            shown = c["impressions"] > 0
            win = c["artwork"] == r["winner"]
            cells.append({
                "artwork": c["artwork"], "level": _level(c["share"]) if shown else None, "winner": win,
                "ctr": pct(c["ctr"], 1) if shown else "–", "share": pct(c["share"], 0) if shown else "",
                "title": (
                    f"{r['segment']} × {c['artwork']}: {pct(c['share'], 1)} of the segment's impressions"
                    f" ({count(c['impressions'])}), CTR {pct(c['ctr'])} (95% {pct_interval(c['ctr_ci'])})"
                    + (" — winner: its interval lies above every other artwork's" if win else "")
                    if shown else f"{r['segment']} × {c['artwork']}: not shown"
                ),
            })
        out_rows.append({
            "segment": r["segment"], "share": pct(r["share"], 1), "impressions": count(r["impressions"]),
            "ctr": pct(r["ctr"]), "ctr_ci": pct_interval(r["ctr_ci"]), "cells": cells, "winner": r["winner"],
        })
    return {"id": table_id, "label": label, "rows": out_rows, "artworks": list(artworks)}


def segment_view(doc: Mapping[str, Any], image_origins: Sequence[str] = ()) -> dict[str, Any] | None:
    """The heatmaps of a title page: all variants pooled, then one per variant. None without a section."""
    sec = doc.get("segments")
    if sec is None:
        return None
    meta = {a["artwork"]: a for a in doc.get("artworks", [])}
    heads = []
    for i, art in enumerate(sec["artworks"]):
        heads.append({
            "id": art, "css": f"c{i % len(PALETTE)}",
            "image": local_image((meta.get(art) or {}).get("image_url"), image_origins),
        })
    tables = [_table("segments-all", "all variants", sec["all"], sec["artworks"])]
    for i, (variant, rows) in enumerate(sec["by_variant"].items()):
        tables.append(_table(f"segments-v{i}", variant, rows, sec["artworks"]))
    return {"rule": _rule_text(sec["rule"]), "heads": heads, "tables": tables}


# ------------------------------------------------------------------------------------------ sparklines
def sparkline(values: Sequence[float | None], top: float | None = None) -> str:
    """An SVG path (viewBox 0 0 SPARK_W SPARK_H) through the values; gaps (None) break the line; '' when
    there is nothing to draw. `top`: the value at the top edge (default: the largest value)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    top = top if top is not None else max(known)
    top = top if top > 0 else 1.0
    n = len(values)
    step = SPARK_W / max(1, n - 1)
    parts, pen_down = [], False
    for i, v in enumerate(values):
        if v is None:
            pen_down = False
            continue
        x = i * step if n > 1 else SPARK_W / 2
        y = SPARK_H - 2 - min(v, top) / top * (SPARK_H - 4)
        parts.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
    return "".join(parts)


def last_point(values: Sequence[float | None], top: float | None = None) -> tuple[float, float] | None:
    """Where `sparkline` puts the last known value (the dot that ends the line; alone, it is the line)."""
    known = [i for i, v in enumerate(values) if v is not None]
    if not known:
        return None
    d = sparkline([v if i == known[-1] else None for i, v in enumerate(values)], top)
    x, y = d[1:].split(",")
    return float(x), float(y)


def trend_view(trend: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Sparkline paths and their accessible summaries for one overview row."""
    if trend is None:
        return None
    imp, ctr = trend["impressions"], trend["ctr"]
    start = time.strftime("%H:%M", time.gmtime(trend["from_minute"] * 60))
    known_ctr = [c for c in ctr if c is not None]
    recent, previous = trend["recent"], trend["previous"]
    return {
        "impressions_d": sparkline([float(v) for v in imp]) if any(imp) else "",
        "impressions_end": last_point([float(v) for v in imp], max(imp)) if any(imp) else None,
        "ctr_d": sparkline(ctr),
        "ctr_end": last_point(ctr, max(known_ctr)) if known_ctr else None,
        "impressions_title": f"impressions per minute since {start} UTC: max {count(max(imp))},"
        f" last {count(imp[-1])}",
        "ctr_title": (
            f"CTR per {trend['ctr_bucket_minutes']}-minute bucket since {start} UTC: "
            + (f"{pct(min(known_ctr))} to {pct(max(known_ctr))}" if known_ctr else "no traffic")
        ),
        "rising": trend["rising"], "new": trend["new"],
        "rate_text": f"{recent['per_minute']:.1f}/min last {recent['minutes']} min vs"
        f" {previous['per_minute']:.1f}/min the {previous['minutes']} min before",
    }
