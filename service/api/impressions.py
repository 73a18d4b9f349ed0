"""POST /impression: which artwork this viewer sees for this title.

The hot path: one pydantic validation of the raw body, one call to the decider (the policy snapshot is
in memory; logging is one Redis round trip), one counter. When Redis is unreachable the decider answers
with the title's default artwork, `fallback: true` and no impression id (nothing was logged).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from service.api import parse_body, service
from service.schemas import ImpressionRequest

bp = Blueprint("impressions", __name__)


@bp.post("/impression")
def impression() -> Response:
    req = parse_body(ImpressionRequest)
    ext = service()
    result = ext.decider.impression(req.title_id, req.user_id, req.context)
    ext.metrics.impression(req.title_id, result.variant, result.fallback)
    return jsonify(
        impression_id=result.impression_id,
        artwork_id=result.artwork_id,
        propensity=result.propensity,
        variant=result.variant,
        policy=result.policy,
        model_version=result.model_version,
        fallback=result.fallback,
    )
