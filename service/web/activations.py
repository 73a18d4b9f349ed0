"""POST /activate: deferred impressions the viewer has now been shown.

`{"impression_ids": [...]}` (1–100 ids, of any titles) answers `{"results": {id: status}}` with
`activated` (it counts from now on: its attribution window starts now), `already_active` (activated
before, rewarded, or never deferred), `unknown` (never logged, or forgotten after its retention) or
`expired` (deferred and its window since the decision has passed: it counts as never shown). Idempotent
and atomic: of concurrent activations of one id exactly one answers `activated`. One Redis round trip per
request. 503 with Retry-After when Redis is unreachable (retry: activation is idempotent).
`answer` is shared by the Flask view and by `service.web.hot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify

from service.web.parsing import json_bytes, service
from service.web.schemas import ActivateRequest

if TYPE_CHECKING:
    from service.state import Artbandit

bp = Blueprint("activations", __name__)


def answer(ext: Artbandit, body: bytes) -> dict[str, Any]:
    req = ActivateRequest.model_validate_json(body)
    results = ext.join.activate(req.impression_ids)
    return {"results": {i: status.value for i, status in results.items()}}


@bp.post("/activate")
def activate() -> Response:
    return jsonify(answer(service(), json_bytes()))
