"""GET /metrics: Prometheus text exposition (all gunicorn workers summed, plus learner health from Redis)."""

from __future__ import annotations

from flask import Blueprint, Response

from service.web.parsing import service

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    ext = service()
    body, content_type = ext.metrics.exposition(ext.store_health)
    return Response(body, content_type=content_type)
