"""GET /stats/<title_id>: the title's statistics document (CTR per variant and artwork with intervals,
lift over control, sample-ratio check, time series, learner health), as
`service.reporting.stats.title_stats` builds it.

Open unless ARTBANDIT_DASHBOARD_TOKEN is set; then it needs that token (or the admin key) as a Bearer
header or `?token=`.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from service.errors import UnknownTitle
from service.web.auth import require_viewer
from service.web.parsing import service

bp = Blueprint("stats", __name__)


@bp.get("/stats/<title_id>")
def title_stats(title_id: str) -> Response:
    ext = service()
    require_viewer(
        request.headers, request.args.get("token"), ext.settings.dashboard_token, ext.settings.admin_keys
    )
    doc = ext.stats_for(title_id)
    if doc is None:
        raise UnknownTitle(f"no title {title_id!r}; GET /titles lists them")
    return jsonify(doc)
