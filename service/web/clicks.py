"""POST /click: the viewer clicked the artwork of an impression.

200 "recorded" for the first click within the attribution window (it labels the impression reward 1),
200 "duplicate" for any later click on a clicked impression, 404 for an id the store does not know,
410 for a click after the window (counted as late, never learned), 503 with Retry-After when Redis is
unreachable: the client should retry rather than lose the click. `answer` is shared by the Flask view
and by `service.web.hot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify

from service.errors import ArtbanditError, LateClick, UnknownImpression
from service.join.rule import ClickOutcome
from service.web.parsing import json_bytes, service
from service.web.schemas import ClickRequest

if TYPE_CHECKING:
    from service.state import Artbandit

bp = Blueprint("clicks", __name__)


def answer(ext: Artbandit, body: bytes) -> dict[str, Any]:
    """The response body for a raw request body. Raises ValidationError (nothing recorded),
    StoreUnavailable (nothing recorded), UnknownImpression or LateClick (counted as such)."""
    req = ClickRequest.model_validate_json(body)
    return judged(ext, req.impression_id, ext.join.click(req.impression_id), LateClick, "click")


def judged(
    ext: Artbandit, impression_id: str, outcome: ClickOutcome, late: type[ArtbanditError], what: str
) -> dict[str, Any]:
    """The answer to a click or reward the join judged (`service.web.rewards` shares it): counted in the
    metrics, then "recorded"/"duplicate", or UnknownImpression (404), or `late` (410)."""
    ext.metrics.click(outcome.value)
    if outcome is ClickOutcome.UNKNOWN:
        raise UnknownImpression(f"no impression {impression_id!r}: it was never served, or expired long ago")
    if outcome is ClickOutcome.LATE:
        window = ext.settings.attribution_window
        raise late(
            f"impression {impression_id!r} is past its attribution window of {window:g} s: "
            f"the {what} was counted as late and not learned"
        )
    return {"status": outcome.value}


@bp.post("/click")
def click() -> Response:
    return jsonify(answer(service(), json_bytes()))
