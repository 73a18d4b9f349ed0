"""The `segments` and `trend` sections of a statistics document, and their view-models."""

from __future__ import annotations

import pytest

from service.reporting import insights_view, segments, trends
from service.reporting.stats import wilson_interval

ARTS = ["a", "b", "c"]


def cell(n: int, x: int) -> dict[str, int]:
    return {"impressions": n, "clicks": x}


def section(counts: dict[str, dict[str, dict[str, dict[str, int]]]]) -> dict[str, object]:
    rule = {"kind": "dominant", "margin": 0.1, "names": ["horror", "romance", "mixed"]}
    raw = {"segments": counts, "segment_rule": rule}
    return segments.section(raw, ARTS, ["control", "explore"])


def test_shares_ctr_and_pooling() -> None:
    doc = section({
        "explore": {"horror": {"a": cell(300, 30), "b": cell(100, 2)}, "romance": {"b": cell(100, 10)}},
        "control": {"horror": {"a": cell(100, 10)}},
    })
    assert doc["segments"] == ["horror", "romance", "mixed"] and doc["artworks"] == ARTS
    explore = {r["segment"]: r for r in doc["by_variant"]["explore"]}
    assert set(explore) == {"horror", "romance"}  # segments without traffic have no row
    horror = explore["horror"]
    assert horror["impressions"] == 400 and horror["clicks"] == 32 and horror["share"] == 0.8
    a, b, c = horror["cells"]
    assert a["share"] == 0.75 and a["ctr"] == 0.1 and a["ctr_ci"] == list(wilson_interval(30, 300))
    assert b["share"] == 0.25 and c["impressions"] == 0 and c["share"] == 0 and c["ctr"] is None
    pooled = {r["segment"]: r for r in doc["all"]}
    assert pooled["horror"]["cells"][0]["impressions"] == 400 and pooled["horror"]["cells"][0]["clicks"] == 40
    assert list(doc["by_variant"]) == ["control", "explore"]


@pytest.mark.parametrize(
    ("cells", "winner", "runner_up"),
    [
        ({"a": cell(1000, 100), "b": cell(1000, 40)}, "a", "b"),  # 10% vs 4%: intervals apart
        ({"a": cell(100, 10), "b": cell(100, 6)}, None, "b"),  # 10% vs 6%: intervals overlap
        # a clearly beats the runner-up b, but c (3 impressions, CTR 0) has an interval reaching above a's
        ({"a": cell(1000, 100), "b": cell(1000, 40), "c": cell(3, 0)}, None, "b"),
        ({"a": cell(1000, 100)}, None, None),  # one artwork shown: nothing to beat
        ({"a": cell(10, 0), "b": cell(10, 0)}, None, "b"),
    ],
)
def test_winner_only_where_intervals_separate(
    cells: dict[str, dict[str, int]], winner: str | None, runner_up: str | None
) -> None:
    row = section({"explore": {"horror": cells}})["by_variant"]["explore"][0]
    assert (row["winner"], row["runner_up"]) == (winner, runner_up)


def test_segments_of_an_earlier_rule_are_still_shown() -> None:
    doc = section({"explore": {"old-segment": {"a": cell(5, 1)}, "horror": {"zz": cell(5, 0)}}})
    assert doc["segments"][-1] == "old-segment" and doc["artworks"][-1] == "zz"


def test_impossible_counts_fail_loudly() -> None:
    with pytest.raises(ValueError, match="clicks must be in"):
        section({"explore": {"horror": {"a": cell(5, 6)}}})


# ------------------------------------------------------------------------------------------ trends
NOW = 1_700_000_000.0 + 30  # mid-minute
M = int(NOW // 60)


def rows(per_minute: dict[int, int], ctr: float = 0.1) -> list[dict[str, object]]:
    return [
        {"minute": m, "variant": "v", "artwork": "a", "impressions": n, "clicks": int(n * ctr)}
        for m, n in per_minute.items()
    ]


def steady(rate: int, minutes: range) -> dict[int, int]:
    return {M - k: rate for k in minutes}


@pytest.mark.parametrize(
    ("recent", "previous", "rising"),
    [
        (20, 20, False),  # flat
        (40, 20, True),  # doubled, plenty of data
        (27, 20, False),  # 1.35x: below the factor
        (4, 1, True),  # 4x: 40 recent against 60 earlier is enough to be sure
        (0, 0, False),
    ],
)
def test_rising_rule(recent: int, previous: int, rising: bool) -> None:
    series = rows({**steady(previous, range(11, 71)), **steady(recent, range(1, 11))})
    t = trends.trend(series, NOW)
    assert t["recent"]["impressions"] == recent * 10 and t["previous"]["impressions"] == previous * 60
    assert t["rising"] is rising


def test_rising_needs_confidence_not_just_a_ratio() -> None:
    assert not trends.is_rising(3, 2)  # 3 recent vs 2 earlier: a 9x rate, from five impressions
    assert not trends.is_rising(30, 90)  # a 2x rate, but the interval reaches below 1.5x
    assert trends.is_rising(120, 360)  # the same 2x rate with four times the data
    assert trends.is_rising(300, 200)
    # the threshold share is q* = 0.2 (a 1.5x rate): just above it with huge counts is rising, at it is not
    assert trends.is_rising(21_000, 79_000) and not trends.is_rising(20_000, 80_000)
    with pytest.raises(ValueError):
        trends.is_rising(-1, 5)


def test_new_title_is_not_rising() -> None:
    t = trends.trend(rows(steady(50, range(1, 5))), NOW)
    assert t["new"] and not t["rising"]


def test_sparkline_data_covers_the_last_complete_hour() -> None:
    series = rows({M: 999, M - 1: 7, M - 60: 5, M - 61: 1000}, ctr=0.5)  # M: current, M-61: too old
    t = trends.trend(series, NOW)
    assert len(t["impressions"]) == 60 and t["from_minute"] == M - 60
    assert t["impressions"][0] == 5 and t["impressions"][-1] == 7 and sum(t["impressions"]) == 12
    assert len(t["ctr"]) == 12 and t["ctr"][0] == 2 / 5 and t["ctr"][-1] == 3 / 7 and t["ctr"][5] is None


def test_sparkline_paths() -> None:
    assert insights_view.sparkline([None, None]) == ""
    assert insights_view.sparkline([0.0, 1.0, None, 2.0]) == "M0.0,26.0L40.0,14.0M120.0,2.0"
    assert insights_view.sparkline([0.0, 2.0]) == "M0.0,26.0L120.0,2.0"
