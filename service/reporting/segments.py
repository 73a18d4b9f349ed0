"""The `segments` section of a title's statistics document: which taste segment is shown which artwork,
and which artwork wins for which segment.

Input (raw, from `service.store.counters.raw_segments`, plus the title's rule):

    raw["segments"] = {variant: {segment: {artwork: {"impressions": int, "clicks": int}}}}
    raw["segment_rule"] = Segmenter.describe() + {"names": [segment names in display order]}

Per variant, and pooled over all variants ("all"), one row per segment with traffic:

- `share`: the segment's share of the variant's impressions; per cell, the artwork's share of the segment's
  impressions (what this segment was shown);
- per cell the logged CTR with its 95% Wilson interval;
- `winner`: the artwork with the highest CTR, but only when its interval lies entirely above the interval
  of the runner-up (second-highest CTR) *and* of every other artwork shown to the segment — one
  lucky artwork with few impressions cannot be out-ranked by chance. No winner with fewer than two artworks
  shown. Intervals are per cell, not corrected for the many cells of a heatmap: read a winner as "clearly
  ahead here", and confirm a decision on the explore variant's unbiased traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.reporting.stats import rate

METHODS = {
    "segments": "viewers grouped by taste at decision time (dominant context feature, 'mixed' when it leads"
    " by less than the margin, or the title's segment rules); impressions and recorded clicks counted per"
    " variant × segment × artwork",
    "segment_winner": "highest-CTR artwork of a segment, marked only when its 95% Wilson interval lies above"
    " those of the runner-up and every other artwork shown to the segment",
}

Cells = Mapping[str, Mapping[str, Mapping[str, int]]]  # segment -> artwork -> {"impressions", "clicks"}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _winner(cells: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(winner or None, runner-up or None) among the cells with impressions."""
    shown = [c for c in cells if c["impressions"] > 0]
    ranked = sorted(shown, key=lambda c: (-c["ctr"], -c["impressions"]))
    if len(ranked) < 2:
        return None, None
    best, runner_up = ranked[0], ranked[1]
    low = best["ctr_ci"][0]
    separated = all(low > c["ctr_ci"][1] for c in ranked[1:])
    return (best["artwork"] if separated else None), runner_up["artwork"]


def _rows(cells: Cells, segments: Sequence[str], artworks: Sequence[str]) -> list[dict[str, Any]]:
    total = sum(c["impressions"] for seg in cells.values() for c in seg.values())
    rows = []
    for segment in segments:
        per_art = cells.get(segment, {})
        n = sum(c["impressions"] for c in per_art.values())
        if n == 0:
            continue
        x = sum(c["clicks"] for c in per_art.values())
        row_cells = []
        for artwork in artworks:
            c = per_art.get(artwork, {})
            an, ax = int(c.get("impressions", 0)), int(c.get("clicks", 0))
            row_cells.append({"artwork": artwork, **rate(ax, an), "share": _ratio(an, n)})
        winner, runner_up = _winner(row_cells)
        rows.append({
            "segment": segment, **rate(x, n), "share": _ratio(n, total), "cells": row_cells,
            "winner": winner, "runner_up": runner_up,
        })
    return rows


def _pooled(raw: Mapping[str, Cells]) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {}
    for cells in raw.values():
        for segment, per_art in cells.items():
            for artwork, c in per_art.items():
                cell = out.setdefault(segment, {}).setdefault(artwork, {"impressions": 0, "clicks": 0})
                cell["impressions"] += int(c.get("impressions", 0))
                cell["clicks"] += int(c.get("clicks", 0))
    return out


def section(
    raw: Mapping[str, Any], artwork_order: Sequence[str], variant_order: Sequence[str]
) -> dict[str, Any]:
    """The document's `segments` section (see the module docstring)."""
    counts: Mapping[str, Cells] = raw.get("segments") or {}
    rule = dict(raw.get("segment_rule") or {})
    named = list(rule.pop("names", []))
    found = {s for cells in counts.values() for s in cells}
    segments = named + sorted(found - set(named))  # e.g. segments of an earlier rule, still counted
    found_art = {a for cells in counts.values() for per_art in cells.values() for a in per_art}
    artworks = list(artwork_order) + sorted(found_art - set(artwork_order))
    variants = [v for v in variant_order if v in counts] + sorted(set(counts) - set(variant_order))
    return {
        "rule": rule or None,
        "segments": segments,
        "artworks": artworks,
        "all": _rows(_pooled(counts), segments, artworks),
        "by_variant": {v: _rows(counts[v], segments, artworks) for v in variants},
    }
