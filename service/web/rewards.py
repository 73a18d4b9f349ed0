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

from service.errors import LateReward
from service.web.clicks import judged
from service.web.parsing import json_bytes, service
from service.web.schemas import RewardRequest

if TYPE_CHECKING:
    from service.state import Artbandit

bp = Blueprint("rewards", __name__)


def answer(ext: Artbandit, body: bytes) -> dict[str, Any]:
    req = RewardRequest.model_validate_json(body)
    outcome = ext.join.reward(req.impression_id, req.value, req.event_id)
    return judged(ext, req.impression_id, outcome, LateReward, "reward")


@bp.post("/reward")
def reward() -> Response:
    return jsonify(answer(service(), json_bytes()))
