"""Request and response models of the HTTP API (pydantic). `/openapi.json` is generated from them.

Requests are validated straight from the raw body with `model_validate_json` (fast, and it rejects
wrong types without coercion: `"1"` and `true` are not numbers). JSON's non-standard `NaN`/`Infinity`
literals, and numbers too large for a float, fail the finite-number check instead of reaching a policy.
Title configs (PUT /titles/<id>) use `service.catalog.TitleConfig`, the same model the catalog YAML uses.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_CONTEXT_FEATURES = 256

FeatureValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]
TitleId = Annotated[str, Field(strict=True, min_length=1, max_length=64, examples=["stranger-things"])]
UserId = Annotated[str, Field(strict=True, min_length=1, max_length=256, examples=["viewer-42"])]
Features = dict[Annotated[str, Field(min_length=1, max_length=64)], FeatureValue]  # a viewer's context


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImpressionRequest(_Request):
    """Which artwork should this viewer see for this title?"""

    title_id: TitleId
    user_id: UserId
    context: Annotated[
        Features,
        Field(
            default_factory=dict,
            max_length=MAX_CONTEXT_FEATURES,
            description="taste features of the viewer, by name; missing features count as 0",
            examples=[{"romance": 0.8, "horror": 0.1}],
        ),
    ]


MAX_PAGE_TITLES = 100
MAX_ACTIVATE_IDS = 100
ImpressionId = Annotated[str, Field(strict=True, min_length=1, max_length=128)]


class PageRequest(_Request):
    """Artwork for every title of a page, decided in one request and logged in one round trip. Each
    title's policy reads the context's features of its own schema and ignores the rest."""

    user_id: UserId
    context: Annotated[
        Features,
        Field(
            default_factory=dict,
            max_length=MAX_CONTEXT_FEATURES,
            description="taste features of the viewer; each title reads the ones in its own schema",
            examples=[{"romance": 0.8, "horror": 0.1}],
        ),
    ]
    titles: Annotated[
        list[TitleId],
        Field(
            min_length=1,
            max_length=MAX_PAGE_TITLES,
            description="title ids in page order, no repeats",
            json_schema_extra={"uniqueItems": True},
            examples=[["stranger-things", "the-crown"]],
        ),
    ]
    defer: Annotated[
        bool,
        Field(
            strict=True,
            default=False,
            description="log the decisions but count them only once POST /activate (or a click/reward) "
            "says they were shown",
        ),
    ]

    @field_validator("titles")
    @classmethod
    def _no_repeats(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        repeated = [t for t in v if t in seen or seen.add(t)]  # type: ignore[func-returns-value]
        if repeated:
            raise ValueError(f"each title may appear once per page; repeated: {sorted(set(repeated))}")
        return v


class ActivateRequest(_Request):
    impression_ids: Annotated[
        list[ImpressionId],
        Field(min_length=1, max_length=MAX_ACTIVATE_IDS, description="impressions now shown to the viewer"),
    ]


class ActivateResponse(BaseModel):
    results: dict[str, Literal["activated", "already_active", "unknown", "expired"]]


class RewardRequest(_Request):
    impression_id: ImpressionId
    value: Annotated[
        float,
        Field(
            strict=True, allow_inf_nan=False, description="the reward, e.g. minutes watched or 1 for a play"
        ),
    ]
    event_id: Annotated[
        str | None,
        Field(
            strict=True,
            default=None,
            min_length=1,
            max_length=128,
            description="identifies this reward event: a retry with the same id is a duplicate",
        ),
    ]


class RewardResponse(BaseModel):
    status: Literal["recorded", "duplicate"]


class ImpressionResponse(BaseModel):
    impression_id: str | None = Field(description="pass it to POST /click; null in fallback")
    artwork_id: str
    propensity: float = Field(description="probability with which this artwork was chosen")
    variant: str
    policy: str
    model_version: int
    fallback: bool = Field(description="true when the store was unreachable: default artwork, not logged")


class ClickRequest(_Request):
    impression_id: ImpressionId


class PageEntry(BaseModel):
    """One title of a page: what POST /impression answers plus `title_id`, or the title's own error
    (`title_id`, `error`, `message`: e.g. unknown_title)."""

    title_id: str
    impression_id: str | None = None
    artwork_id: str | None = None
    propensity: float | None = None
    variant: str | None = None
    policy: str | None = None
    model_version: int | None = None
    fallback: bool | None = None
    error: str | None = None
    message: str | None = None


class PageResponse(BaseModel):
    impressions: list[PageEntry]


class ClickResponse(BaseModel):
    status: Literal["recorded", "duplicate"]


class ErrorResponse(BaseModel):
    error: str = Field(description="stable machine-readable code, e.g. invalid_request")
    message: str = Field(description="what was wrong and how to fix it")


class TitleDeleted(BaseModel):
    deleted: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    detail: str | None = None
    # /readyz: "keyed" when the data plane needs client keys, "open" when anyone who reaches it may call
    data_plane: Literal["keyed", "open"] | None = None
