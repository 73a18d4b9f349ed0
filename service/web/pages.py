"""POST /impressions: the artwork of every title on a viewer's page, in one request.

One pydantic validation of the page (1–100 distinct titles, one user and context), one call to
`Decider.page` (every title decided with its own policy, all logged in one Redis round trip), one entry per
title in request order: what POST /impression answers plus `title_id`, or that title's own error
(`{"title_id", "error", "message"}`, e.g. an unknown title). A malformed page is a 400 for the whole
request, as is a context value a title's policy refuses. `answer` is shared by the Flask view and by
`service.web.hot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify

from service.errors import ArtbanditError
from service.web.impressions import encode as encode_impression
from service.web.parsing import json_bytes, service
from service.web.schemas import PageRequest

if TYPE_CHECKING:
    from service.state import Artbandit

bp = Blueprint("pages", __name__)


def answer(ext: Artbandit, body: bytes) -> dict[str, Any]:
    """The response body for a raw request body. Raises pydantic's ValidationError or InvalidRequest
    (a context value a title's policy refuses), always before anything is logged."""
    req = PageRequest.model_validate_json(body)
    results = ext.decider.page(req.user_id, req.context, req.titles, defer=req.defer)
    entries: list[dict[str, Any]] = []
    metrics = ext.metrics
    for title_id, result in zip(req.titles, results, strict=True):
        if isinstance(result, ArtbanditError):
            metrics.error(result.code)
            entries.append({"title_id": title_id, "error": result.code, "message": result.message})
            continue
        metrics.impression(title_id, result.variant, result.fallback)
        entries.append({"title_id": title_id, **encode_impression(result)})
    return {"impressions": entries}


@bp.post("/impressions")
def impressions() -> Response:
    return jsonify(answer(service(), json_bytes()))
