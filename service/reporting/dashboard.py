"""The dashboard's view-model: statistics documents (see `service/reporting/stats.py`) turned into what the
templates render — formatted numbers, and SVG chart geometry (path strings, ticks) computed here, so the
page needs no chart library and no network.

Everything the templates show comes from here; the templates only lay it out, and Jinja escapes every
string (titles and artwork ids included). Colours are the Okabe–Ito palette (colour-blind safe), and
lines also differ by dash pattern, so no series is told apart by colour alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Okabe & Ito (2008), ordered so the first colours contrast best with white; yellow and black come last.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "7 4", "2 3", "9 3 2 3", "4 4", "1 2")
WIDTH, HEIGHT = 480, 260  # a compromise: ~1.25x on a laptop column, ~0.75x on a phone
MARGIN = {"left": 58, "right": 12, "top": 12, "bottom": 44}
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)  # minutes between x ticks


# ------------------------------------------------------------------------------------------ formatting
def pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def pct_interval(ci: Sequence[float] | None, digits: int = 2) -> str:
    return "–" if ci is None else f"{100 * ci[0]:.{digits}f} – {100 * ci[1]:.{digits}f}%"


def signed_pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:+.{digits}f}%"


def p_value_text(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_clause(p: float | None) -> str:
    """'p = 0.013', 'p = 3.2e-09': small p-values keep their magnitude (SRM at 1e-9 is not SRM at 1e-200)."""
    if p is None:
        return "p = –"
    if p < 1e-300:
        return "p < 1e-300"
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def count(n: int | float | None) -> str:
    return "–" if n is None else f"{n:,.0f}"


def utc_time(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch_s))


def _minute_label(minute: int, span: int) -> str:
    fmt = "%d %H:%M" if span > 1440 else "%H:%M"
    return time.strftime(fmt, time.gmtime(minute * 60))


def local_image(url: str | None, origins: Sequence[str] = ()) -> str | None:
    """The image URL if the page may load it: same-origin paths, inline data images, and absolute URLs of
    the operator's configured image origins (`Settings.image_origins`, which the page's Content-Security-
    Policy lists too). Anything else shows the placeholder box instead of a broken image and a console error.
    """
    if not url or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        return None  # browsers read "/\\host" as "//host"; whitespace and controls have no place in a URL
    if (url.startswith("/") and not url.startswith("//")) or url.startswith("data:image/"):
        return url
    origin = _origin(url)
    return url if origin is not None and origin in origins else None


def _origin(url: str) -> str | None:
    """scheme://host[:port] of an absolute http(s) URL, lower case; None for anything else."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not host or "@" in host:
        return None
    return f"{scheme.lower()}://{host.lower()}"


# ---------------------------------------------------------------------------------------------- charts
@dataclass(frozen=True)
class Tick:
    pos: float  # x or y in SVG user units
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str  # tooltip / accessible text


@dataclass(frozen=True)
class Series:
    key: str  # variant or artwork id (data-series)
    color: str
    css: str  # palette class, "c0".."c7", for HTML swatches
    dash: str = ""
    line_d: str = ""  # the data: an SVG path, empty when there is no data
    band_d: str = ""  # interval band (closed path) or stacked area
    title: str = ""
    points: list[Point] = field(default_factory=list)


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    desc: str
    x_label: str
    y_label: str
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    series: list[Series]
    width: int = WIDTH
    height: int = HEIGHT
    left: float = MARGIN["left"]
    top: float = MARGIN["top"]
    right: float = WIDTH - MARGIN["right"]
    bottom: float = HEIGHT - MARGIN["bottom"]
    shade_from: float | None = None  # x where the provisional region starts
    empty: bool = False

    @property
    def plot_width(self) -> float:
        return self.right - self.left

    @property
    def plot_height(self) -> float:
        return self.bottom - self.top

    @property
    def shade(self) -> tuple[float, float] | None:
        """(x, width) of the provisional region, clipped to the plot; None when there is none."""
        if self.shade_from is None or self.shade_from >= self.right:
            return None
        x = max(self.shade_from, self.left)
        return round(x, 1), round(self.right - x, 1)


def nice_step(span: float, target: int = 5) -> float:
    """A 1/2/2.5/5 x 10^k step giving about `target` intervals over `span` (> 0)."""
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _path(points: Sequence[tuple[float, float]]) -> str:
    return "M" + "L".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)


def _segments(values: Sequence[Any]) -> list[list[int]]:
    """Runs of consecutive indices whose value is not None."""
    runs: list[list[int]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


class _Frame:
    """Maps bucket index and value to SVG coordinates."""

    def __init__(self, buckets: int, y_max: float) -> None:
        self.k, self.y_max = buckets, y_max
        self.left, self.top = MARGIN["left"], MARGIN["top"]
        self.right, self.bottom = WIDTH - MARGIN["right"], HEIGHT - MARGIN["bottom"]

    def x(self, i: float) -> float:  # centre of bucket i; i = -0.5 / k - 0.5 are the plot edges
        return self.left + (i + 0.5) / self.k * (self.right - self.left)

    def y(self, v: float) -> float:
        return self.bottom - min(v, self.y_max) / self.y_max * (self.bottom - self.top)


def _time_ticks(frame: _Frame, buckets: Sequence[int], width: int) -> list[Tick]:
    if not buckets:
        return []
    span = buckets[-1] + width - buckets[0]
    step = next((s for s in TIME_STEPS if span / s <= 6 and s >= width), TIME_STEPS[-1])
    first = buckets[0] + (-buckets[0]) % step
    ticks = []
    for minute in range(first, buckets[-1] + width, step):
        i = (minute - buckets[0]) / width - 0.5  # bucket i spans [i - 0.5, i + 0.5] in frame units
        ticks.append(Tick(frame.x(i), _minute_label(minute, span)))
    return ticks


def _value_ticks(frame: _Frame, step: float, as_pct: bool) -> list[Tick]:
    ticks, v = [], 0.0
    while v <= frame.y_max + 1e-12:
        digits = 0 if as_pct and step * 100 >= 1 else 1
        label = f"{100 * v:.{digits}f}%" if as_pct else _fmt(v)
        ticks.append(Tick(frame.y(v), label))
        v += step
    return ticks


def _shade_from(frame: _Frame, series: Mapping[str, Any]) -> float | None:
    start = series.get("provisional_from")
    if start is None or not series["buckets"]:
        return None
    return frame.x((start - series["buckets"][0]) / series["bucket_minutes"] - 0.5)


def _y_top(variants: Iterable[Mapping[str, Any]]) -> float:
    """Top of the CTR axis: every point, and the interval bands up to their 90th percentile, so one wide
    band of a low-traffic bucket does not squash the chart (taller bands are clipped at the top)."""
    variants = list(variants)
    ctrs = [c for v in variants for c in v["ctr"] if c is not None]
    uppers = sorted(ci[1] for v in variants for ci in v["ctr_ci"] if ci is not None)
    if not ctrs:
        return 0.0
    return max(max(ctrs), uppers[int(0.9 * (len(uppers) - 1))])


def ctr_chart(doc: Mapping[str, Any], colors: Mapping[str, int]) -> Chart:
    """CTR per variant over time: a line through each bucket's CTR and its 95% Wilson band."""
    s = doc["series"]
    buckets, width = s["buckets"], s["bucket_minutes"]
    top = _y_top(s["variants"].values())
    step = nice_step(top) if top > 0 else 0.01
    frame = _Frame(max(1, len(buckets)), min(1.0, step * math.ceil(top / step)) if top > 0 else 0.05)
    out = []
    for name, v in s["variants"].items():
        c = colors[name]
        lines, bands, points = [], [], []
        for run in _segments(v["ctr"]):
            lines.append(_path([(frame.x(i), frame.y(v["ctr"][i])) for i in run]))
            upper = [(frame.x(i), frame.y(v["ctr_ci"][i][1])) for i in run]
            lower = [(frame.x(i), frame.y(v["ctr_ci"][i][0])) for i in reversed(run)]
            if len(run) == 1:  # a lone bucket: a bar as wide as a third of the bucket
                dx = (frame.right - frame.left) / frame.k / 6
                upper = [(upper[0][0] - dx, upper[0][1]), (upper[0][0] + dx, upper[0][1])]
                lower = [(lower[0][0] + dx, lower[0][1]), (lower[0][0] - dx, lower[0][1])]
            bands.append(_path(upper + lower) + "Z")
            for i in run:
                label = _minute_label(buckets[i], 0)
                points.append(Point(
                    frame.x(i), frame.y(v["ctr"][i]),
                    f"{name} {label}: CTR {pct(v['ctr'][i])} ({pct_interval(v['ctr_ci'][i])}), "
                    f"{count(v['impressions'][i])} impressions",
                ))
        out.append(Series(
            key=name, color=PALETTE[c % len(PALETTE)], css=f"c{c % len(PALETTE)}",
            dash=DASHES[c % len(DASHES)], line_d="".join(lines), band_d="".join(bands),
            title=f"{name}: CTR with 95% interval", points=points,
        ))
    return Chart(
        id="ctr-chart", title="CTR over time per variant",
        desc=f"Click-through rate per variant in {width}-minute buckets; bands are 95% Wilson intervals.",
        x_label="decision time (UTC)", y_label="CTR", x_ticks=_time_ticks(frame, buckets, width),
        y_ticks=_value_ticks(frame, step, as_pct=True), series=out, shade_from=_shade_from(frame, s),
        empty=not any(x.line_d for x in out),
    )


def share_chart(
    doc: Mapping[str, Any],
    per_art: Mapping[str, list[int]],
    colors: Mapping[str, int],
    chart_id: str,
    title: str,
) -> Chart:
    """Traffic share per artwork over time as a stacked area, from impressions per artwork and bucket."""
    s = doc["series"]
    buckets, width = s["buckets"], s["bucket_minutes"]
    frame = _Frame(max(1, len(buckets)), 1.0)
    totals = [sum(col) for col in zip(*per_art.values(), strict=True)] if per_art else []
    runs = _segments([t if t > 0 else None for t in totals])
    below = [0.0] * len(totals)
    out = []
    for art, counts in per_art.items():
        c = colors[art]
        above = [b + (n / t if t else 0.0) for b, n, t in zip(below, counts, totals, strict=True)]
        areas = []
        for run in runs:
            idx = run if len(run) > 1 else run * 2  # a lone bucket still gets a width
            xs = [frame.x(i) for i in idx]
            xs[0], xs[-1] = frame.x(idx[0] - 0.5), frame.x(idx[-1] + 0.5)  # extend to the bucket edges
            top_pts = [(x, frame.y(above[i])) for x, i in zip(xs, idx, strict=True)]
            bot_pts = [(x, frame.y(below[i])) for x, i in zip(reversed(xs), reversed(idx), strict=True)]
            areas.append(_path(top_pts + bot_pts) + "Z")
        n_art = sum(counts)
        out.append(Series(
            key=art, color=PALETTE[c % len(PALETTE)], css=f"c{c % len(PALETTE)}", band_d="".join(areas),
            title=f"{art}: {pct(n_art / sum(totals) if sum(totals) else None, 1)} of impressions",
        ))
        below = above
    return Chart(
        id=chart_id, title=title,
        desc=f"Share of impressions per artwork in {width}-minute buckets, stacked to 100%.",
        x_label="decision time (UTC)", y_label="share of impressions",
        x_ticks=_time_ticks(frame, buckets, width), y_ticks=_value_ticks(frame, 0.25, as_pct=True),
        series=out, empty=not runs,
    )


# ------------------------------------------------------------------------------------------ view-models
def _color_index(names: Sequence[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


def _variant_rows(doc: Mapping[str, Any], colors: Mapping[str, int]) -> list[dict[str, Any]]:
    rows = []
    for v in doc["variants"]:
        lift = v["lift"] or {}
        c = colors[v["variant"]]
        # flags and the shown interval/p-value are the always-valid ones (the page is looked at on every
        # refresh); the fixed-horizon p-value is shown beside, labelled as such
        always_valid = lift.get("sequential") or {}
        significant = bool(always_valid.get("significant"))
        ci = always_valid.get("ci")
        lift_ci = "–" if ci is None else f"{signed_pct(ci[0])} to {signed_pct(ci[1])}"
        rows.append({
            "name": v["variant"], "css": f"c{c % len(PALETTE)}", "color": PALETTE[c % len(PALETTE)],
            "dash": DASHES[c % len(DASHES)], "policy": v["policy"] or "–", "is_control": v["is_control"],
            "configured": v["configured"],
            "configured_share": pct(v["configured_share"], 1), "observed_share": pct(v["observed_share"], 1),
            "impressions": count(v["impressions"]), "clicks": count(v["clicks"]),
            "ctr": pct(v["ctr"]), "ctr_ci": pct_interval(v["ctr_ci"]),
            "mean_reward": _reward_text(v),
            "lift": "control" if v["is_control"] else signed_pct(lift.get("estimate")),
            "lift_ci": "" if v["is_control"] else lift_ci,
            "p_value": "" if v["is_control"] else p_value_text(always_valid.get("p_value")),
            "fixed_p_value": "" if v["is_control"] else p_value_text(lift.get("p_value")),
            "direction": "" if not significant else ("up" if (lift.get("estimate") or 0) > 0 else "down"),
            "version": "–" if v["model_version"] is None else str(v["model_version"]),
        })
    return rows


def _reward_text(row: Mapping[str, Any]) -> str | None:
    """Mean reward (over labelled impressions) for titles with a reward config; None for click titles."""
    if "mean_reward" not in row:
        return None
    value = row["mean_reward"]
    return "–" if value is None else f"{value:.3g}"


def _artwork_rows(
    doc: Mapping[str, Any], colors: Mapping[str, int], origins: Sequence[str] = ()
) -> list[dict[str, Any]]:
    rows = []
    for a in doc["artworks"]:
        c = colors[a["artwork"]]
        rows.append({
            "id": a["artwork"], "css": f"c{c % len(PALETTE)}", "image": local_image(a["image_url"], origins),
            "impressions": count(a["impressions"]), "share": pct(a["share"], 1),
            "ctr": pct(a["ctr"]), "ctr_ci": pct_interval(a["ctr_ci"]), "mean_reward": _reward_text(a),
            "by_variant": [pct(b["share"], 1) for b in a["by_variant"].values()],
        })
    return rows


def _srm_view(srm: Mapping[str, Any] | None, variants: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    if srm is None:
        return None
    observed = {v["variant"]: v["impressions"] for v in variants}
    return {
        "flagged": srm["flagged"],
        "chi2": "–" if srm["chi2"] is None else f"{srm['chi2']:.2f}", "df": srm["df"],
        "p": p_clause(srm["p_value"]), "alpha": f"{srm['alpha']:g}",
        "rows": [
            {"name": name, "observed": count(observed.get(name, 0)), "expected": count(e)}
            for name, e in srm["expected"].items()
        ],
    }


def _health_view(h: Mapping[str, Any]) -> dict[str, Any]:
    age, late = h["snapshot_age_s"], h["late_click_share"]
    return {
        "ok": h["ok"], "warnings": h["warnings"], "lag": count(h["lag"]),
        "snapshot_age": "none yet" if age is None else f"{age:.1f} s",
        "join": [(k, count(v)) for k, v in h["join"].items()],
        "late_share": "no clicks yet" if late is None else f"{pct(late, 1)} of clicks",
        "throttled": count(h.get("throttled", 0)),
    }


def _offpolicy_rows(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{
        "variant": o["variant"], "online": pct(o["online_ctr"]), "online_ci": pct_interval(o["online_ci"]),
        "ips": pct(o["ips"]), "ips_ci": pct_interval(o["ips_ci"]),
        "snips": pct(o["snips"]), "snips_ci": pct_interval(o["snips_ci"]), "n": count(o.get("n")),
    } for o in doc["offpolicy"]]


def _tuning_view(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    t = doc.get("offpolicy_tuning")
    if not t:
        return None

    def name(params: Mapping[str, Any]) -> str:
        return ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in params.items())

    rec = t.get("recommended")
    return {
        "variant": t["variant"], "policy": t["policy"], "n": count(t.get("n")), "message": t.get("message"),
        "logged": pct(t.get("logged_value")),
        "confidence": "" if t.get("confidence") is None else f"{t['confidence']:.2%}",
        "recommended": None if rec is None else name(rec["params"]),
        "settings": [{
            "name": name(s["params"]), "dr": pct(s["dr"]), "ci": pct_interval(
                None if s["ci_low"] is None or s["ci_high"] is None else [s["ci_low"], s["ci_high"]]
            ),
            "passes": bool(s["passes_gate"]),
            "chosen": rec is not None and s["params"] == rec["params"],
        } for s in t.get("settings") or []],
    }  # fmt: skip


def title_view(doc: Mapping[str, Any], image_origins: Sequence[str] = ()) -> dict[str, Any]:
    """Everything the title page renders, from one `title_stats` document. `image_origins`: the configured
    origins images may also come from (`local_image`)."""
    variant_colors = _color_index([v["variant"] for v in doc["variants"]])
    art_colors = _color_index([a["artwork"] for a in doc["artworks"]])
    best, share = doc["best"], doc["series"]["share"]
    variants = _variant_rows(doc, variant_colors)
    return {
        "title_id": doc["title_id"], "name": doc["name"], "generated_at": utc_time(doc["generated_at"]),
        "totals": {
            "impressions": count(doc["totals"]["impressions"]), "clicks": count(doc["totals"]["clicks"]),
            "ctr": pct(doc["totals"]["ctr"]), "ctr_ci": pct_interval(doc["totals"]["ctr_ci"]),
            "per_minute": count(doc["totals"]["per_minute_recent"]),
        },
        "best": None if best is None else {
            "variant": best["variant"], "ctr": pct(best["ctr"]), "runner_up": best["runner_up"],
            "p": p_clause(best.get("sequential_p_value_vs_runner_up")),
            "fixed_p": p_clause(best["p_value_vs_runner_up"]), "decided": bool(best.get("decided")),
        },
        "control": doc["control"],
        "variants": variants,
        "uses_reward": any(v["mean_reward"] is not None for v in variants),
        "variant_names": [v["name"] for v in variants],
        "srm": _srm_view(doc["srm"], doc["variants"]),
        "ctr_chart": ctr_chart(doc, variant_colors),
        "share_chart": share_chart(
            doc, share["all"], art_colors, "share-chart", "Traffic share per artwork, all variants"
        ),
        "share_by_variant": [
            share_chart(
                doc, share["by_variant"].get(name, {}), art_colors, f"share-chart-{i}",
                f"Traffic share per artwork, {name}",
            )
            for i, name in enumerate(variant_colors)
        ],
        "artworks": _artwork_rows(doc, art_colors, image_origins),
        "health": _health_view(doc["health"]),
        "offpolicy": _offpolicy_rows(doc),
        "tuning": _tuning_view(doc),
        "methods": doc["methods"],
        "bucket_minutes": doc["series"]["bucket_minutes"],
    }


def overview_view(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The titles overview table, from `stats.overview_row` dicts."""
    out = []
    for r in rows:
        best = r.get("best")
        out.append({
            "title_id": r["title_id"], "name": r["name"], "impressions": count(r["impressions"]),
            "clicks": count(r["clicks"]), "ctr": pct(r["ctr"]), "ctr_ci": pct_interval(r["ctr_ci"]),
            "per_minute": count(r["per_minute_recent"]), "variants": r["variants"],
            # a single variant is "best" only trivially: its CTR is already in the row
            "best": "–" if not best or r["variants"] < 2 else f"{best['variant']} ({pct(best['ctr'])})",
            "srm_flagged": r["srm_flagged"], "health_ok": r["health_ok"],
        })
    return out
