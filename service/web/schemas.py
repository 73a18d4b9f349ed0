"""Request and response models of the HTTP API (pydantic). `/openapi.json` is generated from them.

Requests are validated straight from the raw body with `model_validate_json` (fast, and it rejects
wrong types without coercion: `"1"` and `true` are not numbers). JSON's non-standard `NaN`/`Infinity`
literals, and numbers too large for a float, fail the finite-number check instead of reaching a policy.
Title configs (PUT /titles/<id>) use `service.catalog.TitleConfig`, the same model the catalog YAML uses.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_CONTEXT_FEATURES = 256

FeatureValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]
TitleId = Annotated[str, Field(strict=True, min_length=1, max_length=64, examples=["stranger-things"])]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImpressionRequest(_Request):
    """Which artwork should this viewer see for this title?"""

    title_id: TitleId
    user_id: Annotated[str, Field(strict=True, min_length=1, max_length=256, examples=["viewer-42"])]
    context: Annotated[
        dict[Annotated[str, Field(min_length=1, max_length=64)], FeatureValue],
        Field(
            default_factory=dict,
            max_length=MAX_CONTEXT_FEATURES,
            description="taste features of the viewer, by name; missing features count as 0",
            examples=[{"romance": 0.8, "horror": 0.1}],
        ),
    ]


class ImpressionResponse(BaseModel):
    impression_id: str | None = Field(description="pass it to POST /click; null in fallback")
    artwork_id: str
    propensity: float = Field(description="probability with which this artwork was chosen")
    variant: str
    policy: str
    model_version: int
    fallback: bool = Field(description="true when the store was unreachable: default artwork, not logged")


class ClickRequest(_Request):
    impression_id: Annotated[str, Field(strict=True, min_length=1, max_length=128)]


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
