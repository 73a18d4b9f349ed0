"""Experiment statistics against hand-computed values (the hand computation is in the comments)."""

from __future__ import annotations

import json
import math

import pytest

from service.reporting import stats
from service.reporting.stats import (
    chi2_sf,
    lift,
    regularized_gamma_q,
    srm_check,
    title_stats,
    wilson_interval,
)

Z = 1.959963984540054


def _interval(clicks: int, n: int) -> tuple[float, float]:
    ci = wilson_interval(clicks, n)
    assert ci is not None
    return ci


# ---------------------------------------------------------------------------------------------- Wilson
def test_wilson_10_of_100() -> None:
    # p = 0.1, z²/n = 3.84146/100 = 0.0384146, 1 + z²/n = 1.0384146
    # centre = (0.1 + 0.0192073) / 1.0384146 = 0.114798
    # half   = 1.959964 / 1.0384146 * sqrt(0.1 * 0.9 / 100 + 3.84146 / 40000)
    #        = 1.887461 * sqrt(0.0009 + 0.0000960365) = 1.887461 * 0.0315605 = 0.059569
    # -> [0.055229, 0.174366]  (the textbook Wilson interval for 10/100 is [0.0552, 0.1744])
    lo, hi = _interval(10, 100)
    assert lo == pytest.approx(0.0552291, abs=1e-6)
    assert hi == pytest.approx(0.1743657, abs=1e-6)


def test_wilson_zero_clicks() -> None:
    # p = 0: centre = half = (z²/2n) / (1 + z²/n), so lo = 0 and hi = (z²/n) / (1 + z²/n)
    # n = 10: z²/n = 0.384146 -> hi = 0.384146 / 1.384146 = 0.277533
    lo, hi = _interval(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(0.277533, abs=1e-6)


def test_wilson_all_clicks_is_the_mirror_of_zero_clicks() -> None:
    # by symmetry p -> 1 - p: [1 - 0.277533, 1]
    lo, hi = _interval(10, 10)
    assert lo == pytest.approx(1 - 0.277533, abs=1e-6)
    assert hi == 1.0


def test_wilson_no_impressions_is_none() -> None:
    assert wilson_interval(0, 0) is None


@pytest.mark.parametrize(
    ("clicks", "n", "fragment"),
    [(-1, 10, "clicks must be in [0, n=10]"), (11, 10, "clicks"), (0, -1, "n must be >= 0")],
)
def test_wilson_rejects_impossible_counts(clicks: int, n: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[")):
        wilson_interval(clicks, n)


def test_wilson_covers_about_95_percent() -> None:
    # Coverage at p = 0.05, n = 400, from exact binomial probabilities (no sampling): Wilson keeps close
    # to nominal where the Wald interval under-covers. Computed: 0.9544.
    n, p = 400, 0.05
    coverage = 0.0
    for x in range(n + 1):
        lo, hi = _interval(x, n)
        if lo <= p <= hi:
            coverage += math.comb(n, x) * p**x * (1 - p) ** (n - x)
    assert 0.93 < coverage < 0.97


# ------------------------------------------------------------------------------------------------ lift
def test_lift_100_of_1000_vs_120_of_1000() -> None:
    # ratio = 0.12 / 0.10 = 1.2 -> lift +20%
    # Katz: se(log RR) = sqrt(1/120 - 1/1000 + 1/100 - 1/1000) = sqrt(0.0163333) = 0.127802
    # log 1.2 = 0.182322; ± 1.959964 * 0.127802 = ± 0.250487
    # -> exp([-0.068165, 0.432809]) - 1 = [-0.065894, +0.541581]
    # z-test: pooled p = 220 / 2000 = 0.11; se = sqrt(0.11 * 0.89 * (2/1000)) = 0.0139929
    # z = 0.02 / 0.0139929 = 1.429297; two-sided p = erfc(1.429297 / sqrt 2) = 0.152918
    out = lift(100, 1000, 120, 1000)
    assert out is not None
    assert out["estimate"] == pytest.approx(0.2, abs=1e-12)
    assert out["ci"][0] == pytest.approx(-0.065894, abs=1e-5)
    assert out["ci"][1] == pytest.approx(0.541581, abs=1e-5)
    assert out["p_value"] == pytest.approx(0.152918, abs=1e-5)


def test_lift_significant_case() -> None:
    # control 500/10000 (5%), variant 650/10000 (6.5%): ratio 1.3
    # se(log RR) = sqrt(1/650 - 1/10000 + 1/500 - 1/10000) = sqrt(0.00333846) = 0.0577794
    # log 1.3 = 0.262364 ± 0.113246 -> exp([0.149118, 0.375610]) - 1 = [0.160807, 0.455879]
    # pooled p = 0.0575; se = sqrt(0.0575 * 0.9425 * 0.0002) = 0.00329223; z = 0.015 / se = 4.556243
    # two-sided p = erfc(4.556243 / sqrt 2) = 5.21e-6
    out = lift(500, 10_000, 650, 10_000)
    assert out is not None
    assert out["ci"][0] == pytest.approx(0.160807, abs=1e-5)
    assert out["ci"][1] == pytest.approx(0.455879, abs=1e-5)
    assert out["p_value"] == pytest.approx(5.21e-6, rel=0.01)


def test_lift_zero_cases() -> None:
    assert lift(0, 0, 5, 100) is None  # no control traffic
    assert lift(5, 100, 0, 0) is None  # no variant traffic
    no_control_clicks = lift(0, 100, 5, 100)
    assert no_control_clicks is not None
    assert no_control_clicks["estimate"] is None and no_control_clicks["ci"] is None  # infinite lift
    assert 0 < no_control_clicks["p_value"] < 1
    no_variant_clicks = lift(5, 100, 0, 100)
    assert no_variant_clicks is not None
    assert no_variant_clicks["estimate"] == -1.0 and no_variant_clicks["ci"] is None  # log(0) undefined
    assert lift(0, 100, 0, 100) == {
        "estimate": None, "ci": None, "p_value": 1.0,
        "sequential": {"p_value": 1.0, "ci": None, "significant": False},
    }


# ------------------------------------------------------------------------------------- chi-square / SRM
@pytest.mark.parametrize(
    ("x", "df", "expected"),
    [
        # df = 2: Q(1, x/2) = exp(-x/2); exp(-5.991465/2) = 0.05 (the table's 5% critical value)
        (5.991465, 2, 0.05),
        # df = 1: Q(1/2, x/2) = erfc(sqrt(x/2)); erfc(sqrt(3.841459/2)) = 0.05
        (3.841459, 1, 0.05),
        # df = 3: Q(3/2, y) = erfc(sqrt y) + 2 sqrt(y/pi) exp(-y), y = 7.815/2 -> 0.049994
        (7.815, 3, 0.0499939),
        # df = 4: Q(2, y) = exp(-y) (1 + y), y = 9.488/2 -> 0.0086995 * 5.744 = 0.049994
        (9.488, 4, 0.0499944),
        # printed chi-square tables: df 10 at 1% is 23.209, df 30 at 0.1% is 59.703
        (23.209, 10, 0.0100),
        (59.703, 30, 0.0010),
        # far tail (continued-fraction branch): exp(-500) = 7.1246e-218
        (1000.0, 2, 7.1245764e-218),
    ],
)
def test_chi2_survival_against_closed_forms_and_tables(x: float, df: int, expected: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(expected, rel=1e-4)


def test_regularized_gamma_edges() -> None:
    assert regularized_gamma_q(3.0, 0.0) == 1.0
    # Q(1, x) = exp(-x) on both sides of the series / continued-fraction switch at x = a + 1
    for x in (0.3, 1.9, 2.1, 40.0):
        assert regularized_gamma_q(1.0, x) == pytest.approx(math.exp(-x), rel=1e-12)
    with pytest.raises(ValueError, match="a must be > 0"):
        regularized_gamma_q(0.0, 1.0)


def test_srm_two_variants_not_flagged() -> None:
    # 5100 vs 4900 at 1:1: expected 5000 each; chi² = 100²/5000 * 2 = 4.0, df 1
    # p = erfc(sqrt(2)) = 0.0455003 > 0.001
    out = srm_check({"a": 5100, "b": 4900}, {"a": 1, "b": 1})
    assert out["chi2"] == pytest.approx(4.0)
    assert out["df"] == 1
    assert out["p_value"] == pytest.approx(0.0455003, rel=1e-5)
    assert out["flagged"] is False


def test_srm_three_variants() -> None:
    # weights 10/5/85 and 10000 impressions: expected 1000 / 500 / 8500
    # observed 1100 / 500 / 8400: chi² = 100²/1000 + 0 + 100²/8500 = 10 + 1.176471 = 11.176471, df 2
    # p = exp(-11.176471 / 2) = 0.00374162: not flagged at 0.001, flagged at 0.01
    observed = {"control": 1100, "explore": 500, "linucb": 8400}
    weights = {"control": 10.0, "explore": 5.0, "linucb": 85.0}
    out = srm_check(observed, weights)
    assert out["expected"] == pytest.approx({"control": 1000, "explore": 500, "linucb": 8500})
    assert out["chi2"] == pytest.approx(11.176471, abs=1e-6)
    assert out["p_value"] == pytest.approx(0.00374162, rel=1e-5)
    assert out["flagged"] is False
    assert srm_check(observed, weights, alpha=0.01)["flagged"] is True


def test_srm_flags_a_broken_split() -> None:
    # 50/50 configured, 5300 / 4700 observed: chi² = 300²/5000 * 2 = 36, p = erfc(sqrt 18) = 1.97e-9
    out = srm_check({"a": 5300, "b": 4700}, {"a": 1, "b": 1})
    assert out["chi2"] == pytest.approx(36.0)
    assert out["p_value"] == pytest.approx(1.9732e-9, rel=1e-3)
    assert out["flagged"] is True


def test_srm_allows_for_the_counters_own_error() -> None:
    """A 0.5% deviation at a million viewers is HyperLogLog noise, not a broken split: plain chi2 =
    2·5000²/500000 = 100 (flagged); with 0.81% relative error each variance becomes
    500000·(1 + 0.0081²·500000) = 1.6452e7, chi2 = 2·25e6/1.6452e7 = 3.04 (p = 0.081, not flagged)."""
    observed, weights = {"a": 505_000, "b": 495_000}, {"a": 1, "b": 1}
    assert srm_check(observed, weights)["flagged"] is True
    out = srm_check(observed, weights, relative_error=0.0081)
    assert out["chi2"] == pytest.approx(2 * 5000**2 / (500_000 * (1 + 0.0081**2 * 500_000)))
    assert out["flagged"] is False
    # a real mismatch of 10% is still caught at that scale
    assert srm_check({"a": 550_000, "b": 450_000}, weights, relative_error=0.0081)["flagged"] is True


def test_srm_without_traffic_or_with_one_variant() -> None:
    assert srm_check({}, {"a": 1, "b": 1})["p_value"] is None
    assert srm_check({"a": 10}, {"a": 1})["flagged"] is False
    # traffic of a variant that is no longer configured is ignored
    assert srm_check({"a": 50, "b": 50, "gone": 900}, {"a": 1, "b": 1})["chi2"] == 0.0


@pytest.mark.parametrize(
    ("observed", "weights", "alpha", "fragment"),
    [
        ({"a": 1}, {"a": 0, "b": 1}, 0.001, "weight of variant 'a' must be a finite number > 0"),
        ({"a": -1}, {"a": 1, "b": 1}, 0.001, "observed impressions of variant 'a' must be >= 0"),
        ({"a": 1}, {"a": 1, "b": 1}, 1.5, r"alpha must be in \(0, 1\)"),
    ],
)
def test_srm_rejects_bad_input(observed: dict, weights: dict, alpha: float, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        srm_check(observed, weights, alpha=alpha)


# ------------------------------------------------------------------------------------------ document
NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC; epoch minute 28333333
EXPERIMENT = {
    "control": "control",
    "variants": [
        {"name": "control", "weight": 10, "policy": {"name": "fixed", "params": {}}},
        {"name": "explore", "weight": 5, "policy": {"name": "uniform", "params": {}}},
        {"name": "linucb", "weight": 85, "policy": {"name": "linucb", "params": {}}},
    ],
}


def _raw() -> dict:
    minute = int(NOW // 60)
    return {
        "title_id": "t1",
        "variants": {
            "control": {
                "impressions": 1000, "clicks": 50, "artworks": {"a": {"impressions": 1000, "clicks": 50}}},
            "explore": {"impressions": 500, "clicks": 30, "artworks": {
                "a": {"impressions": 250, "clicks": 10}, "b": {"impressions": 250, "clicks": 20}}},
            "linucb": {"impressions": 8500, "clicks": 600, "artworks": {
                "a": {"impressions": 500, "clicks": 20}, "b": {"impressions": 8000, "clicks": 580}}},
        },
        "series": [
            {"minute": minute - 3, "variant": "linucb", "artwork": "a", "impressions": 400, "clicks": 16},
            {"minute": minute - 3, "variant": "linucb", "artwork": "b", "impressions": 100, "clicks": 7},
            {"minute": minute - 1, "variant": "linucb", "artwork": "b", "impressions": 500, "clicks": 35},
            {"minute": minute - 1, "variant": "control", "artwork": "a", "impressions": 60, "clicks": 3},
        ],
        "join": {"pending": 7, "clicked": 680, "defaulted": 9300, "late": 2, "duplicate": 1, "unknown": 0},
        "learner": {"lag": 3, "snapshot_age_s": 0.8, "versions": {"linucb": 41, "explore": 12}},
        "attribution_window_s": 120,
    }


def test_title_stats_variants_lift_and_srm() -> None:
    doc = title_stats(_raw(), EXPERIMENT, NOW)
    by = {v["variant"]: v for v in doc["variants"]}
    assert [v["variant"] for v in doc["variants"]] == ["control", "explore", "linucb"]
    assert by["control"]["ctr"] == pytest.approx(0.05) and by["control"]["lift"] is None
    assert by["linucb"]["lift"] == lift(50, 1000, 600, 8500)
    assert by["linucb"]["configured_share"] == pytest.approx(0.85)
    assert by["linucb"]["observed_share"] == pytest.approx(0.85)
    assert by["linucb"]["model_version"] == 41 and by["control"]["model_version"] is None
    assert doc["srm"]["chi2"] == pytest.approx(0.0) and doc["srm"]["flagged"] is False
    assert doc["best"]["variant"] == "linucb" and doc["best"]["runner_up"] == "explore"
    assert doc["totals"]["impressions"] == 10_000 and doc["totals"]["clicks"] == 680


def test_srm_counts_viewers_when_the_store_has_them() -> None:
    """Impressions split exactly 10/5/85 above, but if the viewers behind them split 120/50/830 the
    check must see the viewers: expected 100/50/850, chi2 = 20²/100 + 0 + 20²/850 = 4.4706 (df 2,
    p = exp(-4.4706/2) = 0.1070)."""
    raw = _raw()
    for name, users in (("control", 120), ("explore", 50), ("linucb", 830)):
        raw["variants"][name]["users"] = users
    doc = title_stats(raw, EXPERIMENT, NOW)
    assert doc["srm"]["unit"] == "viewers"
    c2 = 0.0081**2  # HyperLogLog standard error, added to each term's variance
    chi2 = 400 / (100 + c2 * 100**2) + 400 / (850 + c2 * 850**2)  # = 3.9974 + 0.4692
    assert doc["srm"]["chi2"] == pytest.approx(chi2)
    assert doc["srm"]["p_value"] == pytest.approx(math.exp(-chi2 / 2))
    assert title_stats(_raw(), EXPERIMENT, NOW)["srm"]["unit"] == "impressions"


def test_title_stats_artworks() -> None:
    doc = title_stats(_raw(), EXPERIMENT, NOW)
    arts = {a["artwork"]: a for a in doc["artworks"]}
    assert arts["a"]["impressions"] == 1750 and arts["a"]["clicks"] == 80
    assert arts["a"]["share"] == pytest.approx(0.175)
    assert arts["b"]["by_variant"]["linucb"]["share"] == pytest.approx(8000 / 8500)
    assert arts["b"]["by_variant"]["control"]["share"] == 0.0


def test_title_stats_series_buckets_and_provisional_edge() -> None:
    doc = title_stats(_raw(), EXPERIMENT, NOW)
    s = doc["series"]
    m = int(NOW // 60)
    assert s["bucket_minutes"] == 1 and s["buckets"] == [m - 3, m - 2, m - 1, m]
    lin = s["variants"]["linucb"]
    assert lin["impressions"] == [500, 0, 500, 0]
    assert lin["ctr"][0] == pytest.approx(23 / 500) and lin["ctr"][1] is None and lin["ctr_ci"][1] is None
    assert s["share"]["all"]["a"] == [400, 0, 60, 0]
    assert s["share"]["by_variant"]["linucb"]["b"] == [100, 0, 500, 0]
    # window 120 s: impressions from floor((NOW - 120) / 60) = m - 2 on may still be clicked
    assert s["provisional_from"] == m - 2


def test_series_bucket_width_adapts_to_the_span() -> None:
    raw = _raw()
    m = int(NOW // 60)
    raw["series"] = [{"minute": m - 119, "variant": "linucb", "artwork": "a", "impressions": 1, "clicks": 0}]
    s = title_stats(raw, EXPERIMENT, NOW)["series"]
    assert s["bucket_minutes"] == 3  # 120 minutes / at most 40 points
    assert len(s["buckets"]) <= stats.MAX_SERIES_POINTS + 1
    assert all(b % 3 == 0 for b in s["buckets"])  # aligned to the epoch, so buckets do not shift


def test_title_stats_without_experiment_or_traffic_is_json_clean() -> None:
    raw = {"title_id": "empty", "variants": {}, "series": [], "join": {}, "learner": {}}
    doc = title_stats(raw, None, NOW)
    assert doc["variants"] == [] and doc["srm"] is None and doc["best"] is None
    assert doc["totals"]["ctr"] is None and doc["totals"]["ctr_ci"] is None
    assert doc["health"]["ok"] is True
    json.dumps(doc, allow_nan=False)
    full = title_stats(_raw(), EXPERIMENT, NOW)
    json.dumps(full, allow_nan=False)


def test_configured_variant_without_traffic() -> None:
    raw = _raw()
    del raw["variants"]["control"]
    raw["series"] = [r for r in raw["series"] if r["variant"] != "control"]
    doc = title_stats(raw, EXPERIMENT, NOW)
    control = doc["variants"][0]
    assert control["impressions"] == 0 and control["ctr"] is None and control["ctr_ci"] is None
    assert all(v["lift"] is None for v in doc["variants"])  # no control traffic: no lift
    assert doc["srm"]["flagged"] is True  # 0 of 10% is a mismatch
    json.dumps(doc, allow_nan=False)


def test_health_warnings() -> None:
    raw = _raw()
    raw["learner"] = {"lag": 50_000, "snapshot_age_s": 300.0, "versions": {}}
    raw["join"] = {"clicked": 90, "late": 10}
    h = title_stats(raw, EXPERIMENT, NOW)["health"]
    assert h["ok"] is False
    assert len(h["warnings"]) == 3
    assert h["late_click_share"] == pytest.approx(0.1)
    raw["learner"] = {"lag": 0, "snapshot_age_s": None}
    assert "no policy snapshot" in title_stats(raw, EXPERIMENT, NOW)["health"]["warnings"][0]


def test_offpolicy_slot_is_filled_with_online_ctr() -> None:
    raw = _raw()
    raw["offpolicy"] = [
        {"variant": "linucb", "ips": 0.071, "ips_ci": [0.06, 0.082], "snips": 0.07,
         "snips_ci": [0.061, 0.079], "n": 500},
        {"variant": "control", "ips": float("nan"), "ips_ci": None, "snips": 0.05,
         "snips_ci": [0.04, float("inf")]},
    ]
    doc = title_stats(raw, EXPERIMENT, NOW)
    lin, ctl = doc["offpolicy"]
    assert lin["online_ctr"] == pytest.approx(600 / 8500)
    assert lin["ips_ci"] == [0.06, 0.082] and lin["n"] == 500
    assert ctl["ips"] is None and ctl["snips_ci"] is None  # non-finite numbers never reach the JSON
    json.dumps(doc, allow_nan=False)


def test_overview_row() -> None:
    row = stats.overview_row(title_stats(_raw(), EXPERIMENT, NOW))
    assert row["title_id"] == "t1" and row["name"] == "t1"
    assert row["impressions"] == 10_000 and row["variants"] == 3
    assert row["best"]["variant"] == "linucb" and row["srm_flagged"] is False and row["health_ok"] is True
    # traffic began at m-3, so the complete minutes m-3..m-1: (500 + 560) / 3 per minute
    assert row["per_minute_recent"] == pytest.approx(1060 / 3)
    # once traffic is older than 10 minutes, the rate is over the last 10 complete minutes
    raw = _raw()
    old = {"minute": int(NOW // 60) - 30, "variant": "control", "artwork": "a", "impressions": 9, "clicks": 0}
    raw["series"].append(old)
    assert stats.overview_row(title_stats(raw, EXPERIMENT, NOW))["per_minute_recent"] == pytest.approx(106.0)
