"""Taste segments: the dominant-feature rule, its margin, rules, and config validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.catalog import parse_title
from service.segments import MAX_SEGMENT_FEATURES, MIXED, NONE, OTHER, SegmentConfig, Segmenter

FEATURES = ["horror", "romance", "comedy"]


@pytest.mark.parametrize(
    ("context", "segment"),
    [
        ({"horror": 0.7, "romance": 0.2}, "horror"),
        ({"horror": 0.2, "romance": 0.7, "comedy": 0.05}, "romance"),
        ({"horror": 0.45, "romance": 0.4}, MIXED),  # leads by 0.05 < margin 0.1
        ({"horror": 0.5, "romance": 0.4}, "horror"),  # leads by exactly the margin
        ({"comedy": 0.3}, "comedy"),  # a missing feature counts 0
        ({"horror": 0.05}, MIXED),  # leads 0 by less than the margin
        ({}, NONE),
        ({"horror": -1.0, "romance": 0.0}, NONE),
        ({"horror": 0.9, "unknown-feature": 5.0}, "horror"),  # only the title's features count
    ],
)
def test_dominant_feature(context: dict[str, float], segment: str) -> None:
    assert Segmenter.for_title(FEATURES, None).assign(context) == segment


def test_margin_and_narrowed_features() -> None:
    s = Segmenter.for_title(FEATURES, SegmentConfig(margin=0.0, features=["horror", "romance"]))
    assert s.assign({"horror": 0.41, "romance": 0.4}) == "horror"
    assert s.assign({"comedy": 0.9, "horror": 0.1}) == OTHER  # dominant, but not a segment feature
    assert s.names() == ["horror", "romance", MIXED, OTHER, NONE]
    assert Segmenter.for_title(FEATURES, None).names() == [*FEATURES, MIXED, NONE]


def test_many_features_are_bounded() -> None:
    features = [f"f{i}" for i in range(40)]
    s = Segmenter.for_title(features, None)
    assert len(s.names()) == MAX_SEGMENT_FEATURES + 3
    assert s.assign({"f35": 1.0}) == OTHER and s.assign({"f3": 1.0}) == "f3"


def test_rules_first_match_wins() -> None:
    cfg = SegmentConfig.model_validate({"rules": [
        {"name": "scared romantics", "when": {"horror": 0.3, "romance": 0.3}},
        {"name": "horror fans", "when": {"horror": 0.5}},
    ]})
    s = Segmenter.for_title(FEATURES, cfg)
    assert s.assign({"horror": 0.6, "romance": 0.35}) == "scared romantics"
    assert s.assign({"horror": 0.6}) == "horror fans"
    assert s.assign({"comedy": 1.0}) == OTHER
    assert s.names() == ["scared romantics", "horror fans", OTHER]
    assert s.describe()["kind"] == "rules"


BASE = {"features": FEATURES, "artworks": [{"id": "a"}, {"id": "b"}], "policy": {"name": "uniform"}}


@pytest.mark.parametrize(
    ("segments", "fragment"),
    [
        ({"features": ["drama"]}, "segments use features not in the title's features"),
        ({"rules": [{"name": "x", "when": {"drama": 0.1}}]}, "segments use features not in the title's"),
        ({"rules": [{"name": "other", "when": {"horror": 0.1}}]}, "reserved"),
        ({"rules": [{"name": "x", "when": {"horror": 0.1}}, {"name": "x", "when": {"comedy": 0.1}}]},
         "unique"),
        ({"rules": [{"name": "x", "when": {}}]}, "at least 1"),
        ({"margin": -0.1}, "greater than or equal to 0"),
        ({"margin": float("nan")}, "finite number"),
        ({"rules": [{"name": "x", "when": {"horror": float("inf")}}]}, "finite number"),
        ({"features": ["horror"], "rules": [{"name": "x", "when": {"horror": 0.1}}]}, "either"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_segment_configs(segments: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        parse_title("t", {**BASE, "segments": segments})


def test_a_feature_named_like_a_reserved_segment_needs_a_choice() -> None:
    body = {**BASE, "features": ["mixed", "horror"]}
    with pytest.raises(ValidationError, match="reserved"):
        parse_title("t", body)
    assert parse_title("t", {**body, "segments": {"features": ["horror"]}}).segmenter.names()[0] == "horror"
