"""POST /impression: which artwork this viewer sees for this title.

The hot path: one pydantic validation of the raw body, one call to the decider (the policy snapshot is
in memory; logging is one Redis round trip), one counter. When Redis is unreachable the decider answers
with the title's default artwork, `fallback: true` and no impression id (nothing was logged).
`answer` is shared by the Flask view and by `service.web.hot` (the same route without Flask's
per-request machinery, which is what serves it in production).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify

from service.web.parsing import json_bytes, service
from service.web.schemas import ImpressionRequest

if TYPE_CHECKING:
    from service.serving.decider import ImpressionResult
    from service.state import Artbandit

bp = Blueprint("impressions", __name__)


def answer(ext: Artbandit, body: bytes) -> dict[str, Any]:
    """The response body for a raw request body. Raises pydantic's ValidationError or an ArtbanditError
    (UnknownTitle, InvalidRequest, StoreUnavailable), always before anything is logged."""
    req = ImpressionRequest.model_validate_json(body)
    result = ext.decider.impression(req.title_id, req.user_id, req.context)
    ext.metrics.impression(req.title_id, result.variant, result.fallback)
    return encode(result)


def encode(result: ImpressionResult) -> dict[str, Any]:
    """What POST /impression answers for a decision (a page's entry is this plus its `title_id`)."""
    return {
        "impression_id": result.impression_id,
        "artwork_id": result.artwork_id,
        "propensity": result.propensity,
        "variant": result.variant,
        "policy": result.policy,
        "model_version": result.model_version,
        "fallback": result.fallback,
    }


@bp.post("/impression")
def impression() -> Response:
    return jsonify(answer(service(), json_bytes()))
