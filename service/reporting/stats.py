"""Experiment statistics: from raw counters to the JSON document the dashboard and the stats API show.

Methods (the page states them too):
- CTR interval: Wilson score interval, 95% (z = 1.96). Unlike the normal ("Wald") interval it stays
  inside [0, 1] and keeps its coverage at small counts and at CTRs near 0.
- Lift of a variant over control: relative lift p_v / p_c - 1. Its interval is the delta method on the
  log of the ratio (Katz): se(log RR) = sqrt(1/x_v - 1/n_v + 1/x_c - 1/n_c), exponentiated back, so it
  is asymmetric like the ratio itself. No interval when either arm has zero clicks (log undefined).
  The p-value is the two-sided pooled two-proportion z-test of p_v = p_c. The two can disagree at the
  very edge of significance; they come from different (standard) approximations. Both are
  FIXED-HORIZON numbers, valid for one look at a sample size fixed in advance; the dashboard is looked at
  continuously, so its flags and best-variant badge use the always-valid (sequential) p-value and lift
  interval of `service.reporting.sequential` (mSPRT), reported beside them under "sequential".
- Sample-ratio mismatch (SRM): Pearson chi-square of observed distinct viewers per variant against the
  configured weights — viewers, not impressions, because assignment is sticky per viewer: heavy
  viewers make impression shares drift from the weights with nothing wrong (a 25-minute demo run
  tripped an impression-based check). Viewers are counted by Redis HyperLogLogs (bounded memory,
  standard error 0.81%), so each term's variance is E + (0.0081·E)² instead of E: at small counts this
  is the plain test, at millions of viewers it stops flagging the counter's own noise (it then detects
  mismatches of a few percent and more). Impressions (exact counts, plain test) are used only when
  viewer counts are missing. df = k - 1, flagged when p < alpha (0.001 by default: SRM checks run on
  every refresh, so a strict alpha keeps false alarms rare). The survival function is the regularized upper
  incomplete gamma Q(df/2, x/2), computed here (series / continued fraction) to avoid a scipy dependency.

CTR is recorded clicks over impressions, both attributed to the impression's decision minute. Recent
impressions whose attribution window is still open may yet be clicked, so the newest points run low;
the series marks them provisional when the window is known.

The raw input (written by the data plane) is:

    {"title_id": str,
     "variants": {variant: {"impressions": int, "clicks": int,
                            "artworks": {artwork_id: {"impressions": int, "clicks": int}}}},
                  # titles with a reward config also carry, per variant and artwork,
                  # "reward_sum": float and "labelled": int (mean reward = reward_sum / labelled)
     "series": [{"minute": epoch_minute, "variant": str, "artwork": str, "impressions": int, "clicks": int}],
     "join": {"pending", "clicked", "defaulted", "late", "duplicate", "unknown", "lost", "never_shown": int},
     "learner": {"lag": int, "snapshot_age_s": float | None, "versions": {variant: int},
                 "throttled": int},   # rewarded events over a viewer's cap, not learned
     # optional:
     "name": str,                                  # display name from the catalog
     "artwork_meta": {artwork_id: {"image_url": str | None}},   # catalog order is kept
     "attribution_window_s": float,
     "offpolicy": [{"variant", "ips", "ips_ci", "snips", "snips_ci", "n"?}],   # from the OPE estimators
     "offpolicy_tuning": {...} | None}   # offpolicy.tuning_row: best setting on the explore logs, gated
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from service.reporting import sequential

Z95 = 1.959963984540054  # two-sided 95% normal quantile
SRM_ALPHA = 0.001
MAX_SERIES_POINTS = 40  # buckets per time series; the bucket width (minutes) adapts to the span
HLL_RELATIVE_ERROR = 0.0081  # Redis HyperLogLog standard error
RECENT_MINUTES = 10  # traffic rate in the overview: impressions per minute over this many minutes
# learner-health thresholds (warnings only, never errors)
MAX_LAG_EVENTS = 10_000
MAX_SNAPSHOT_AGE_S = 60.0
MAX_LATE_CLICK_SHARE = 0.05  # late / (recorded + late): above this the attribution window looks too short

METHODS = {
    "ctr_interval": "Wilson score interval, 95%",
    "lift": "relative lift (variant CTR / control CTR - 1)",
    "lift_interval": "delta method on the log of the CTR ratio (Katz), 95%, fixed-horizon (one look)",
    "p_value": "two-sided pooled two-proportion z-test against control, fixed-horizon (one look; per variant,"
    " not corrected for multiple comparisons)",
    "sequential": "always-valid mSPRT p-value (normal mixture, tau = 10% of the pooled CTR) and confidence"
    f" sequence of the lift (log ratio, tau = 0.1), alpha {sequential.ALPHA:g}; no decision before"
    f" {sequential.MIN_CLICKS} clicks per arm; valid however often the page is refreshed. Flags and the"
    " best-variant badge use these",
    "srm": f"Pearson chi-square of distinct viewers per variant vs configured weights, flagged when"
    f" p < {SRM_ALPHA:g}",
    "best": "highest CTR; decided when the always-valid p-value against the runner-up is below"
    f" {sequential.ALPHA:g} (the fixed-horizon z-test p-value is shown as such)",
}


# --------------------------------------------------------------------------------------------- helpers
def _finite(x: float | None) -> float | None:
    """JSON-safe number: NaN and infinities become None."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _check_counts(name: str, successes: int, n: int) -> None:
    if n < 0:
        raise ValueError(f"{name}: n must be >= 0, got {n!r}")
    if not 0 <= successes <= n:
        raise ValueError(f"{name}: clicks must be in [0, n={n}], got {successes!r}")


def normal_sf2(z: float) -> float:
    """Two-sided normal tail probability P(|Z| >= |z|)."""
    return math.erfc(abs(z) / math.sqrt(2.0))


# ------------------------------------------------------------------------------------------ intervals
def wilson_interval(clicks: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; None when n == 0."""
    _check_counts("wilson_interval", clicks, n)
    if n == 0:
        return None
    p = clicks / n
    z2n = z * z / n
    center = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    lo = 0.0 if clicks == 0 else max(0.0, center - half)  # exact ends, not 1 - 1e-16
    hi = 1.0 if clicks == n else min(1.0, center + half)
    return lo, hi


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided pooled z-test of p1 = p2; None when either n is 0, 1.0 when the pooled rate is 0 or 1."""
    _check_counts("two_proportion_p_value", x1, n1)
    _check_counts("two_proportion_p_value", x2, n2)
    if n1 == 0 or n2 == 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return normal_sf2((x2 / n2 - x1 / n1) / se)


def lift(
    control_clicks: int, control_n: int, variant_clicks: int, variant_n: int, z: float = Z95
) -> dict[str, Any] | None:
    """Relative lift of a variant over control: {"estimate", "ci": [lo, hi] | None, "p_value",
    "sequential": {"p_value", "ci", "significant"}} — "ci" and "p_value" are fixed-horizon (one look),
    "sequential" the always-valid ones the dashboard's flags use.

    None when either arm has no impressions; estimate None when control has no clicks (infinite lift).
    """
    _check_counts("lift control", control_clicks, control_n)
    _check_counts("lift variant", variant_clicks, variant_n)
    if control_n == 0 or variant_n == 0:
        return None
    p_value = two_proportion_p_value(control_clicks, control_n, variant_clicks, variant_n)
    always_valid = sequential.compare(control_clicks, control_n, variant_clicks, variant_n)
    if control_clicks == 0:
        return {"estimate": None, "ci": None, "p_value": p_value, "sequential": always_valid}
    ratio = (variant_clicks / variant_n) / (control_clicks / control_n)
    ci: list[float] | None = None
    if variant_clicks > 0:
        se = math.sqrt(1 / variant_clicks - 1 / variant_n + 1 / control_clicks - 1 / control_n)
        log_ratio = math.log(ratio)
        ci = [math.exp(log_ratio - z * se) - 1, math.exp(log_ratio + z * se) - 1]
    return {"estimate": ratio - 1, "ci": ci, "p_value": p_value, "sequential": always_valid}


# ------------------------------------------------------------------------------------ chi-square / SRM
def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), the regularized upper incomplete gamma function (a > 0, x >= 0).

    Series for P when x < a + 1, modified Lentz continued fraction for Q otherwise (Numerical Recipes
    §6.2); both converge to ~1e-15 relative in well under 200 terms for the arguments used here.
    """
    if not a > 0:
        raise ValueError(f"a must be > 0, got {a!r}")
    if not x >= 0:
        raise ValueError(f"x must be >= 0, got {x!r}")
    if x == 0:
        return 1.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        denom = a
        for _ in range(1000):
            denom += 1
            term *= x / denom
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_prefactor) * h)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square with df degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df!r}")
    return regularized_gamma_q(df / 2, max(0.0, x) / 2)


def srm_check(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    alpha: float = SRM_ALPHA,
    relative_error: float = 0.0,
) -> dict[str, Any]:
    """Chi-square test of observed impressions per variant against the configured split.

    Only configured variants count (traffic of a variant no longer configured is ignored). Returns
    {"chi2", "df", "p_value", "alpha", "flagged", "expected": {variant: count}}; chi2 and p_value are
    None (not flagged) when there are fewer than two variants or no impressions. `relative_error` is the
    standard error of the counts themselves (e.g. 0.0081 for HyperLogLog estimates), added to each
    term's variance.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    for name, w in weights.items():
        if not (isinstance(w, int | float) and w > 0 and math.isfinite(w)):
            raise ValueError(f"weight of variant {name!r} must be a finite number > 0, got {w!r}")
    for name in weights:
        if observed.get(name, 0) < 0:
            raise ValueError(f"observed impressions of variant {name!r} must be >= 0, got {observed[name]!r}")
    total_w = sum(weights.values())
    n = sum(observed.get(name, 0) for name in weights)
    expected = {name: n * w / total_w for name, w in weights.items()}
    out: dict[str, Any] = {
        "chi2": None, "df": max(0, len(weights) - 1), "p_value": None, "alpha": alpha, "flagged": False,
        "expected": expected,
    }
    if len(weights) < 2 or n == 0:
        return out
    c2 = relative_error**2
    chi2 = sum((observed.get(name, 0) - e) ** 2 / (e + c2 * e * e) for name, e in expected.items())
    p_value = chi2_sf(chi2, len(weights) - 1)
    out.update(chi2=chi2, p_value=p_value, flagged=p_value < alpha)
    return out


# ------------------------------------------------------------------------------------------ documents
def rate(clicks: int, n: int) -> dict[str, Any]:
    """{"impressions", "clicks", "ctr", "ctr_ci"}: the numbers every table row shows."""
    ci = wilson_interval(clicks, n)
    return {"impressions": n, "clicks": clicks, "ctr": _ratio(clicks, n), "ctr_ci": list(ci) if ci else None}


def mean_reward(counts: Mapping[str, Any]) -> dict[str, Any]:
    """{"mean_reward", "rewarded_labels"} for the counters of a title with a reward config (labels are
    the clipped reward aggregates, emitted at each impression's deadline); {} for click titles."""
    if "labelled" not in counts:
        return {}
    n = int(counts["labelled"])
    return {"mean_reward": _ratio(float(counts.get("reward_sum", 0.0)), n), "rewarded_labels": n}


def _variant_order(raw: Mapping[str, Any], experiment: Mapping[str, Any] | None) -> list[str]:
    configured = [v["name"] for v in experiment["variants"]] if experiment else []
    found = set(raw.get("variants", {})) | {row["variant"] for row in raw.get("series", [])}
    return configured + sorted(found - set(configured))


def _artwork_order(raw: Mapping[str, Any]) -> list[str]:
    meta = list(raw.get("artwork_meta") or {})
    seen = set(meta)
    found: set[str] = set()
    for v in raw.get("variants", {}).values():
        found.update(v.get("artworks", {}))
    found.update(row["artwork"] for row in raw.get("series", []))
    return meta + sorted(found - seen)


def _variants(
    raw: Mapping[str, Any], experiment: Mapping[str, Any] | None, order: list[str]
) -> list[dict[str, Any]]:
    raw_variants = raw.get("variants", {})
    config = {v["name"]: v for v in experiment["variants"]} if experiment else {}
    control = experiment.get("control") if experiment else None
    total_w = sum(float(v["weight"]) for v in config.values())
    total_n = sum(int(raw_variants.get(name, {}).get("impressions", 0)) for name in order)
    versions = (raw.get("learner") or {}).get("versions") or {}
    ctl = raw_variants.get(control, {}) if control else {}
    out = []
    for name in order:
        counts = raw_variants.get(name, {})
        n, x = int(counts.get("impressions", 0)), int(counts.get("clicks", 0))
        cfg = config.get(name)
        row = {"variant": name, **rate(x, n), **mean_reward(counts)}
        row.update(
            policy=cfg["policy"]["name"] if cfg else None,
            weight=float(cfg["weight"]) if cfg else None,
            configured_share=float(cfg["weight"]) / total_w if cfg else None,
            observed_share=_ratio(n, total_n),
            is_control=name == control,
            configured=cfg is not None,
            model_version=versions.get(name),
            lift=None,
        )
        if control and name != control:
            row["lift"] = lift(int(ctl.get("clicks", 0)), int(ctl.get("impressions", 0)), x, n)
        out.append(row)
    return out


def _best(variants: list[dict[str, Any]]) -> dict[str, Any] | None:
    ranked = sorted((v for v in variants if v["ctr"] is not None), key=lambda v: -v["ctr"])
    if not ranked:
        return None
    best = ranked[0]
    out = {
        "variant": best["variant"], "ctr": best["ctr"], "runner_up": None, "p_value_vs_runner_up": None,
        "sequential_p_value_vs_runner_up": None, "decided": len(ranked) == 1,
    }  # fmt: skip
    if len(ranked) > 1:
        r = ranked[1]
        out["runner_up"] = r["variant"]
        out["p_value_vs_runner_up"] = two_proportion_p_value(
            r["clicks"], r["impressions"], best["clicks"], best["impressions"]
        )
        p = sequential.p_value(r["clicks"], r["impressions"], best["clicks"], best["impressions"])
        out["sequential_p_value_vs_runner_up"] = p
        out["decided"] = p is not None and p < sequential.ALPHA
    return out


def _artworks(raw: Mapping[str, Any], order: list[str], variant_order: list[str]) -> list[dict[str, Any]]:
    meta = raw.get("artwork_meta") or {}
    raw_variants = raw.get("variants", {})
    totals = {a: [0, 0] for a in order}
    per_variant: dict[str, dict[str, tuple[int, int]]] = {}
    for name in variant_order:
        arts = raw_variants.get(name, {}).get("artworks", {})
        per_variant[name] = {
            a: (int(c.get("impressions", 0)), int(c.get("clicks", 0))) for a, c in arts.items()
        }
        for a, (n, x) in per_variant[name].items():
            totals[a][0] += n
            totals[a][1] += x
    grand = sum(n for n, _ in totals.values())
    rewards: dict[str, dict[str, float]] = {}  # artwork -> reward_sum and labelled, pooled over variants
    for name in variant_order:
        for a, c in raw_variants.get(name, {}).get("artworks", {}).items():
            for k in ("reward_sum", "labelled"):
                if k in c:
                    rewards.setdefault(a, {}).setdefault(k, 0.0)
                    rewards[a][k] += float(c[k])
    out = []
    for a in order:
        n, x = totals[a]
        by_variant = {}
        for name in variant_order:
            vn, vx = per_variant[name].get(a, (0, 0))
            v_total = sum(c[0] for c in per_variant[name].values())
            by_variant[name] = {**rate(vx, vn), "share": _ratio(vn, v_total)}
        out.append({
            "artwork": a, "image_url": (meta.get(a) or {}).get("image_url"), **rate(x, n),
            "share": _ratio(n, grand), "by_variant": by_variant, **mean_reward(rewards.get(a, {})),
        })
    return out


def _series(raw: Mapping[str, Any], variants: list[str], artworks: list[str], now: float) -> dict[str, Any]:
    rows = raw.get("series", [])
    now_minute = int(now // 60)
    out: dict[str, Any] = {
        "bucket_minutes": 1, "buckets": [], "provisional_from": None, "variants": {},
        "share": {"all": {}, "by_variant": {}},
    }
    if not rows:
        return out
    start = min(int(r["minute"]) for r in rows)
    end = max(now_minute, max(int(r["minute"]) for r in rows))
    width = max(1, math.ceil((end - start + 1) / MAX_SERIES_POINTS))
    first = start - start % width
    buckets = list(range(first, end + 1, width))
    index = {b: i for i, b in enumerate(buckets)}
    k = len(buckets)
    imp = {v: [0] * k for v in variants}
    clk = {v: [0] * k for v in variants}
    art_all = {a: [0] * k for a in artworks}
    art_var = {v: {a: [0] * k for a in artworks} for v in variants}
    for r in rows:
        m = int(r["minute"])
        i = index[m - m % width]
        v, a = r["variant"], r["artwork"]
        n, x = int(r["impressions"]), int(r["clicks"])
        imp[v][i] += n
        clk[v][i] += x
        art_all[a][i] += n
        art_var[v][a][i] += n
    for v in variants:
        cis = [wilson_interval(x, n) for x, n in zip(clk[v], imp[v], strict=True)]
        out["variants"][v] = {
            "impressions": imp[v], "clicks": clk[v],
            "ctr": [_ratio(x, n) for x, n in zip(clk[v], imp[v], strict=True)],
            "ctr_ci": [list(ci) if ci else None for ci in cis],
        }
    window = raw.get("attribution_window_s")
    if window:
        open_from = math.floor((now - float(window)) / 60)  # impressions from here on may still be clicked
        out["provisional_from"] = next((b for b in buckets if b + width - 1 >= open_from), None)
    out.update(bucket_minutes=width, buckets=buckets, share={"all": art_all, "by_variant": art_var})
    return out


def _recent_rate(rows: Iterable[Mapping[str, Any]], now: float) -> float:
    """Impressions per minute over the last RECENT_MINUTES complete minutes — or over the complete minutes
    since the first traffic in the series, when that is shorter (a fresh run would read low otherwise)."""
    rows = list(rows)
    now_minute = int(now // 60)
    first = now_minute - RECENT_MINUTES
    recent = sum(int(r["impressions"]) for r in rows if first <= int(r["minute"]) < now_minute)
    if not rows:
        return 0.0
    span = min(RECENT_MINUTES, now_minute - min(int(r["minute"]) for r in rows))
    return recent / span if span > 0 else 0.0


def _health(raw: Mapping[str, Any], impressions: int) -> dict[str, Any]:
    learner = raw.get("learner") or {}
    join = {k: int((raw.get("join") or {}).get(k, 0)) for k in
            ("pending", "clicked", "defaulted", "late", "duplicate", "unknown", "lost", "never_shown")}
    lag = int(learner.get("lag", 0))
    age = _finite(learner.get("snapshot_age_s"))
    warnings = []
    if lag > MAX_LAG_EVENTS:
        warnings.append(f"learner is {lag} events behind (more than {MAX_LAG_EVENTS})")
    if age is None and impressions > 0:
        warnings.append("no policy snapshot published yet")
    elif age is not None and age > MAX_SNAPSHOT_AGE_S:
        warnings.append(f"last snapshot is {age:.0f} s old (more than {MAX_SNAPSHOT_AGE_S:.0f} s)")
    if join["lost"] > 0:
        warnings.append(
            f"{join['lost']} impression(s) expired while still pending and were never learned: "
            "no expiry sweep ran for longer than attribution window + retention"
        )
    throttled = int(learner.get("throttled", 0))
    if throttled > 0:
        warnings.append(
            f"{throttled} rewarded event(s) were over their viewer's cap (viewer_reward_cap) and not "
            "learned: a backend may be flooding viewers with clicks or rewards"
        )
    late_share = _ratio(join["late"], join["clicked"] + join["late"])
    if late_share is not None and late_share > MAX_LATE_CLICK_SHARE:
        warnings.append(
            f"{late_share:.1%} of clicks arrive after the attribution window"
            f" (more than {MAX_LATE_CLICK_SHARE:.0%})"
        )
    return {
        "lag": lag, "snapshot_age_s": age, "versions": dict(learner.get("versions") or {}),
        "throttled": throttled, "join": join, "late_click_share": late_share, "ok": not warnings,
        "warnings": warnings,
    }


def _offpolicy(raw: Mapping[str, Any], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    online = {v["variant"]: v for v in variants}
    out = []
    for est in raw.get("offpolicy") or []:
        name = est["variant"]
        v = online.get(name, {})

        def interval(key: str, est: Mapping[str, Any] = est) -> list[float] | None:
            ci = est.get(key)
            if ci is None:
                return None
            lo, hi = (_finite(c) for c in ci)
            return [lo, hi] if lo is not None and hi is not None else None

        out.append({
            "variant": name, "online_ctr": v.get("ctr"), "online_ci": v.get("ctr_ci"),
            "ips": _finite(est.get("ips")), "ips_ci": interval("ips_ci"),
            "snips": _finite(est.get("snips")), "snips_ci": interval("snips_ci"),
            "n": est.get("n"),
        })
    return out


def _json_safe(obj: Any) -> Any:
    """A copy with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, Mapping):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def title_stats(raw: Mapping[str, Any], experiment: Mapping[str, Any] | None, now: float) -> dict[str, Any]:
    """The whole statistics document of one title (JSON-ready: no NaN, no infinities)."""
    variant_order = _variant_order(raw, experiment)
    artwork_order = _artwork_order(raw)
    variants = _variants(raw, experiment, variant_order)
    n = sum(v["impressions"] for v in variants)
    x = sum(v["clicks"] for v in variants)
    srm = None
    if experiment and len(experiment["variants"]) > 1:
        raw_variants = raw.get("variants", {})
        counted = [raw_variants.get(v["variant"], {}) for v in variants]
        unit = "viewers" if counted and all("users" in c for c in counted) else "impressions"
        observed = {
            v["variant"]: int(c["users"]) if unit == "viewers" else v["impressions"]
            for v, c in zip(variants, counted, strict=True)
        }
        srm = srm_check(
            observed,
            {v["name"]: float(v["weight"]) for v in experiment["variants"]},
            relative_error=HLL_RELATIVE_ERROR if unit == "viewers" else 0.0,
        )
        srm["unit"] = unit
    return {
        "title_id": raw["title_id"],
        "name": raw.get("name") or raw["title_id"],
        "generated_at": now,
        "control": experiment.get("control") if experiment else None,
        "totals": {**rate(x, n), "per_minute_recent": _recent_rate(raw.get("series", []), now)},
        "best": _best(variants),
        "variants": variants,
        "srm": srm,
        "artworks": _artworks(raw, artwork_order, variant_order),
        "series": _series(raw, variant_order, artwork_order, now),
        "health": _health(raw, n),
        "offpolicy": _offpolicy(raw, variants),
        "offpolicy_tuning": _json_safe(raw.get("offpolicy_tuning")),
        "methods": METHODS,
    }


def overview_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the titles overview, from a `title_stats` document."""
    srm = doc.get("srm")
    return {
        "title_id": doc["title_id"],
        "name": doc["name"],
        **{k: doc["totals"][k] for k in ("impressions", "clicks", "ctr", "ctr_ci", "per_minute_recent")},
        "variants": len(doc["variants"]),
        "best": doc["best"],
        "srm_flagged": bool(srm and srm["flagged"]),
        "health_ok": doc["health"]["ok"],
    }
