"""Taste segments: which group of viewers a decision belongs to, for the dashboard's segment heatmap.

A title's `segments` setting (optional, in the title config) chooses the rule:

- **dominant feature** (the default): a viewer belongs to the segment named after the largest positive
  value of their context among the segment features, when it beats the second largest by at least
  `margin` (context units; default 0.1, a missing feature counts 0). Otherwise the viewer is `mixed`; with
  no positive value at all, `none`. Segment features are the title's features (`features` narrows them);
  at most `MAX_SEGMENT_FEATURES` are kept, the first ones in the title's order, and a viewer whose dominant
  feature is beyond them is `other`.
- **rules**: `rules` is an ordered list of `{name, when: {feature: minimum}}`; the first rule whose every
  listed feature is at least its minimum names the segment, and a viewer no rule matches is `other`.

The bound that follows (docs/api.md states it too): one rule names at most `MAX_SEGMENTS` = 33 segments
(30 features plus `mixed`, `other`, `none`; or 32 rules plus `other`), so the segment counters of a title
hold at most 2 · variants · 33 · artworks fields (≈ 135k at the config limits of 32 variants and 64
artworks; the sample catalog's experiment: 2 · 3 · 9 · 6 = 324 at most).

Segments are assigned when the decision is made (from the context the decision used) and counted with it;
changing the rule changes the segments of new decisions only (the old rule's counts stay, like the totals
of a removed artwork).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIXED, NONE, OTHER = "mixed", "none", "other"
RESERVED = (MIXED, NONE, OTHER)
DEFAULT_MARGIN = 0.1
MAX_SEGMENT_FEATURES = 30
MAX_RULES = 32
MAX_SEGMENTS = max(MAX_SEGMENT_FEATURES + len(RESERVED), MAX_RULES + 1)  # 33: what one rule can name

SegmentName = Annotated[str, Field(min_length=1, max_length=64)]
# stored as JSON: no NaN or infinities; strict: `false` is not a number here (ints are)
Threshold = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class SegmentRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SegmentName
    when: dict[str, Threshold] = Field(min_length=1)  # feature -> minimum value (inclusive)


class SegmentConfig(BaseModel):
    """The `segments` part of a title config. Feature names are checked against the title by the title."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float = Field(default=DEFAULT_MARGIN, ge=0, le=1e6, strict=True, allow_inf_nan=False)
    features: list[SegmentName] | None = Field(default=None, max_length=MAX_SEGMENT_FEATURES)
    rules: list[SegmentRule] | None = Field(default=None, min_length=1, max_length=MAX_RULES)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentConfig:
        if self.rules is not None and self.features is not None:
            raise ValueError("give either segments.features (dominant-feature rule) or segments.rules")
        names = [r.name for r in self.rules or []]
        if len(set(names)) != len(names):
            raise ValueError(f"segment rule names must be unique, got {names}")
        clash = sorted(set(names) & set(RESERVED))
        if clash:
            raise ValueError(f"segment rule names {clash} are reserved ({', '.join(RESERVED)})")
        if self.features is not None and len(set(self.features)) != len(self.features):
            raise ValueError("segments.features must be unique")
        return self

    def used_features(self) -> set[str]:
        if self.rules is not None:
            return {f for r in self.rules for f in r.when}
        return set(self.features or [])


@dataclass(frozen=True)
class Segmenter:
    """Assigns a segment to a context. Built once per title config (`for_title`); `assign` is hot-path."""

    features: tuple[str, ...]  # the dominant-feature rule's candidates ((): rules apply)
    all_features: tuple[str, ...]  # every feature of the title (dominance is judged over all of them)
    margin: float
    rules: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]

    @classmethod
    def for_title(cls, title_features: Sequence[str], config: SegmentConfig | None) -> Segmenter:
        config = config or SegmentConfig()
        if config.rules is not None:
            rules = tuple((r.name, tuple(r.when.items())) for r in config.rules)
            return cls((), tuple(title_features), config.margin, rules)
        chosen = config.features if config.features is not None else title_features[:MAX_SEGMENT_FEATURES]
        return cls(tuple(chosen), tuple(title_features), config.margin, ())

    @property
    def kind(self) -> str:
        return "rules" if self.rules else "dominant"

    def names(self) -> list[str]:
        """Every segment this rule can produce, in display order."""
        if self.rules:
            return [name for name, _ in self.rules] + [OTHER]
        extra = [OTHER] if len(self.features) < len(self.all_features) else []
        return [*self.features, MIXED, *extra, NONE]

    def describe(self) -> dict[str, object]:
        if self.rules:
            return {"kind": "rules", "rules": [{"name": n, "when": dict(w)} for n, w in self.rules]}
        return {"kind": "dominant", "margin": self.margin, "features": list(self.features)}

    def assign(self, context: Mapping[str, float]) -> str:
        if self.rules:
            for name, when in self.rules:
                if all(context.get(f, 0.0) >= low for f, low in when):
                    return name
            return OTHER
        top_name, top, second = "", 0.0, 0.0
        for name in self.all_features:
            value = context.get(name, 0.0)
            if value > top:
                top_name, top, second = name, value, top
            elif value > second:
                second = value
        if top <= 0.0:
            return NONE
        if top - second < self.margin - 1e-9:  # 0.5 - 0.4 is 0.0999…: a lead of exactly the margin counts
            return MIXED
        return top_name if top_name in self.features else OTHER
