"""Title configuration: artworks, taste-feature schema, and the experiment (variants with policies).

Validated with pydantic; the same models read the admin API's JSON and the catalog YAML. A config is
valid only if every variant's policy can actually be built with these artworks and features.

Building and fitting policies lives here too, shared by the learner, the workers' cache and the
off-policy panel: `build_policy` makes a variant's fresh policy; a live policy is tied to its variant's
spec and the feature schema, and is replaced when either changes (`spec_fingerprint` tells), while
artworks may come and go (`fit_arms` adds and removes arms so the policy's arms are the title's artworks).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from policies import POLICIES, Policy, create_policy
from service.segments import RESERVED, SegmentConfig, Segmenter

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
MAX_ARTWORKS = 64
MAX_FEATURES = 256
DEFAULT_VARIANT = "default"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Artwork(_Strict):
    id: Identifier
    features: dict[str, float] = Field(default_factory=dict)
    image_url: str | None = Field(default=None, max_length=2048)

    @field_validator("features")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        for name, value in v.items():
            if not math.isfinite(value):
                raise ValueError(f"artwork feature {name!r} must be finite, got {value!r}")
        return v


class PolicySpec(_Strict):
    name: str = "linucb"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in POLICIES:
            raise ValueError(f"unknown policy {v!r}; known policies: {', '.join(sorted(POLICIES))}")
        return v

    @field_validator("params")
    @classmethod
    def _served_floor(cls, v: dict[str, Any]) -> dict[str, Any]:
        # policies accept floor 0 for offline candidates; a served policy's logs must give every artwork a
        # chance, or off-policy evaluation of any other policy on them is impossible
        floor = v.get("floor")
        if isinstance(floor, int | float) and not isinstance(floor, bool) and floor == 0:
            raise ValueError(
                "floor must be > 0 for a served policy (its logs must give every artwork a chance)"
            )
        return v

    @field_validator("params")
    @classmethod
    def _auto_is_omitted(cls, v: dict[str, Any]) -> dict[str, Any]:
        # early_updates "auto" (or null) is the default: drop it, so the two spellings are one spec and one
        # fingerprint, and build_policy resolves it against the title (its reward rule)
        if "early_updates" in v and (v["early_updates"] is None or v["early_updates"] == "auto"):
            return {k: value for k, value in v.items() if k != "early_updates"}
        return v


class Variant(_Strict):
    name: Identifier
    weight: float = Field(gt=0, le=1e6)
    policy: PolicySpec = Field(default_factory=PolicySpec)


class Experiment(_Strict):
    salt: str | None = Field(default=None, max_length=128)  # None: the title id
    control: Identifier | None = None
    variants: list[Variant] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _names(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the variants {names}")
        return self


class RewardSpec(_Strict):
    """How a title's rewards become the label at the deadline (POST /reward). Without one a title has
    today's click semantics: the first reward counts (a click is 1), the label is clipped to [0, 1].

    aggregate: `first` keeps the first reward (later ones are duplicates), `sum` adds every reward of the
    window, `max` keeps the largest (with sum/max a repeated event id is a duplicate). The label is the
    aggregate clipped to [min, max]; an impression without any reward is labelled 0 clipped."""

    aggregate: Literal["first", "sum", "max"] = "first"
    min: float = Field(default=0.0, strict=True, allow_inf_nan=False, ge=-1e9, le=1e9)
    max: float = Field(default=1.0, strict=True, allow_inf_nan=False, ge=-1e9, le=1e9)

    @model_validator(mode="after")
    def _ordered(self) -> RewardSpec:
        if not self.min < self.max:
            raise ValueError(f"reward.min must be below reward.max, got [{self.min!r}, {self.max!r}]")
        return self


class TitleConfig(_Strict):
    """What `PUT /titles/<title_id>` accepts (title_id comes from the URL) and the catalog YAML holds."""

    title_id: Identifier
    name: str | None = Field(default=None, max_length=200)  # display name
    features: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(max_length=MAX_FEATURES)
    artworks: list[Artwork] = Field(min_length=1, max_length=MAX_ARTWORKS)
    default_artwork: Identifier | None = None  # served when Redis is down; None: the first artwork
    policy: PolicySpec | None = None  # shorthand for one variant named "default"
    experiment: Experiment | None = None
    segments: SegmentConfig | None = None  # taste segments of the dashboard (service/segments.py)
    reward: RewardSpec | None = None  # None: clicks (first reward counts, labels in [0, 1])

    @model_validator(mode="after")
    def _consistent(self) -> TitleConfig:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features must be unique")
        ids = [a.id for a in self.artworks]
        if len(set(ids)) != len(ids):
            raise ValueError(f"artwork ids must be unique, got {ids}")
        known = set(self.features)
        for art in self.artworks:
            unknown = sorted(set(art.features) - known)
            if unknown:
                raise ValueError(f"artwork {art.id!r} uses features not in the title's features: {unknown}")
        if self.default_artwork is not None and self.default_artwork not in ids:
            raise ValueError(f"default_artwork {self.default_artwork!r} is not one of the artworks")
        if self.policy is not None and self.experiment is not None:
            raise ValueError("give either policy or experiment, not both")
        self._check_segments(known)
        for variant in self.variants:
            try:
                policy = build_policy(self, variant.name, seed=0)
            except ValueError as exc:
                raise ValueError(f"variant {variant.name!r}: {exc}") from exc
            if self.reward is not None and policy.early_updates:
                # the clicks stream early updates read carries no reward value (learning/early.py)
                raise ValueError(
                    f"variant {variant.name!r}: early_updates learns click rewards only; this title has "
                    "a `reward` rule (graded rewards are learned at the deadline): drop one of the two"
                )
        return self

    def _check_segments(self, known: set[str]) -> None:
        unknown = sorted(self.segments.used_features() - known) if self.segments else []
        if unknown:
            raise ValueError(f"segments use features not in the title's features: {unknown}")
        named = set(self.segmenter.features)
        clash = sorted(named & set(RESERVED))
        if clash:
            raise ValueError(
                f"features {clash} would name a segment like a reserved one ({', '.join(RESERVED)});"
                " choose segments.features or segments.rules"
            )

    @property
    def segmenter(self) -> Segmenter:
        """The title's segment rule (built per call: the hot path keeps its own per config object)."""
        return Segmenter.for_title(self.features, self.segments)

    @property
    def variants(self) -> list[Variant]:
        if self.experiment is not None:
            return list(self.experiment.variants)
        return [Variant(name=DEFAULT_VARIANT, weight=1.0, policy=self.policy or PolicySpec())]

    @property
    def salt(self) -> str:
        if self.experiment is not None and self.experiment.salt:
            return self.experiment.salt
        return self.title_id

    @property
    def control(self) -> str | None:
        return self.experiment.control if self.experiment is not None else None

    @property
    def artwork_ids(self) -> list[str]:
        return [a.id for a in self.artworks]

    @property
    def fallback_artwork(self) -> str:
        return self.default_artwork or self.artworks[0].id

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


def build_policy(cfg: TitleConfig, variant: str, seed: int | None) -> Policy:
    """A fresh policy for one variant of a title. Policies that take artwork features get them.

    `early_updates` left to its default ("auto") is resolved here, where the title is known: false on a
    title with a graded `reward` rule (the clicks stream early updates read carries no reward value), else
    the policy's own default (true unless forgetting < 1)."""
    spec = next(v.policy for v in cfg.variants if v.name == variant)
    params = dict(spec.params)
    cls = POLICIES[spec.name]
    settings = {f.name for f in fields(cls.settings_class)}
    if "arm_features" in settings and "arm_features" not in params:
        params["arm_features"] = {a.id: dict(a.features) for a in cfg.artworks}
    if "early_updates" in settings and "early_updates" not in params and cfg.reward is not None:
        params["early_updates"] = False
    return create_policy(spec.name, cfg.artwork_ids, cfg.features, seed, **params)


def parse_title(title_id: str, body: Any) -> TitleConfig:
    """Validate a JSON/YAML body for one title. Raises pydantic.ValidationError."""
    if not isinstance(body, dict):
        raise ValueError("a title must be a JSON object")
    return TitleConfig.model_validate({**body, "title_id": title_id})


def load_catalog(path: str | Path) -> list[TitleConfig]:
    """Read a catalog YAML: `titles: {title_id: {features, artworks, policy|experiment}}`."""
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict) or not isinstance(doc.get("titles"), dict):
        raise ValueError(f"{path}: expected a mapping with a 'titles' mapping at the top")
    out = []
    for title_id, body in doc["titles"].items():
        try:
            out.append(parse_title(str(title_id), body))
        except (ValidationError, ValueError) as exc:
            raise ValueError(f"{path}: title {title_id!r}: {exc}") from exc
    return out


# ------------------------------------------------------------------ keeping a live policy in step
def spec_fingerprint(cfg: TitleConfig, variant: str) -> str:
    """Changes exactly when the variant's policy must start afresh: its spec or the feature schema.
    The resolved `early_updates` is not part of it: a policy may switch it on and keep its statistics
    (`Policy.start_early_updates`); the learner compares it on its own (learning/learner.py)."""
    spec = cfg.variant(variant).policy
    doc = json.dumps({"policy": spec.model_dump(mode="json"), "features": cfg.features}, sort_keys=True)
    return hashlib.blake2b(doc.encode(), digest_size=12).hexdigest()


def fit_arms(policy: Policy, cfg: TitleConfig) -> bool:
    """Add the title's new artworks (with their features) and remove the dropped ones. True if changed."""
    wanted = cfg.artwork_ids
    have = set(policy.arms)
    changed = False
    for art in cfg.artworks:
        if art.id not in have:
            policy.add_arm(art.id, dict(art.features))
            changed = True
    keep = set(wanted)
    for arm in policy.arms:
        if arm not in keep:
            policy.remove_arm(arm)
            changed = True
    return changed


def stable_seed(title_id: str, variant: str) -> int:
    """A seed that is the same for a (title, variant) in every process: the learner's fresh policies."""
    digest = hashlib.blake2b(f"{title_id}\0{variant}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def reseed(policy: Policy, seed: int | None = None) -> None:
    """Give a policy loaded from a shared snapshot this process's own random stream (OS entropy unless a
    seed is given), so workers that load the same snapshot do not draw the same arms."""
    policy.reseed(seed)
