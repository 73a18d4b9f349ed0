"""POST /reward: a graded reward for an impression (a quality play, minutes watched).

`{"impression_id", "value", "event_id"?}`; the title's `reward` config says how rewards of one impression
combine (`first` | `sum` | `max`) and the bounds its label is clipped to (`service.catalog.RewardSpec`;
without one: clicks, first reward counts, [0, 1]). 200 "recorded"; 200 "duplicate" for a second reward
under `first` or a repeated `event_id` under `sum`/`max` (send an event id so client retries cannot
double-count); 404 for an unknown impression; 410 after the attribution window (counted late, never
learned); 503 with Retry-After when Redis is unreachable. A reward on a deferred impression activates it.
`answer` is shared by the Flask view and by `service.web.hot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify

from service.errors import LateReward, UnknownImpression
from service.join.rule import ClickOutcome
from service.web.parsing import json_bytes, service
from service.web.schemas import RewardRequest

if TYPE_CHECKING:
    from service.state import Artbandit

bp = Blueprint("rewards", __name__)


def answer(ext: Artbandit, body: bytes) -> dict[str, Any]:
    req = RewardRequest.model_validate_json(body)
    outcome = ext.join.reward(req.impression_id, req.value, req.event_id)
    ext.metrics.click(outcome.value)
    if outcome is ClickOutcome.UNKNOWN:
        raise UnknownImpression(
            f"no impression {req.impression_id!r}: it was never served, or expired long ago"
        )
    if outcome is ClickOutcome.LATE:
        window = ext.settings.attribution_window
        raise LateReward(
            f"impression {req.impression_id!r} is past its attribution window of {window:g} s: "
            "the reward was counted as late and not learned"
        )
    return {"status": outcome.value}


@bp.post("/reward")
def reward() -> Response:
    return jsonify(answer(service(), json_bytes()))
