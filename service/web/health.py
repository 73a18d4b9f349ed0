"""GET /healthz: the process is alive (no Redis call). GET /readyz: Redis answers a PING."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError

from service.web.parsing import service

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response | tuple[Response, int]:
    try:
        service().redis.ping()
    except RedisError as exc:
        return jsonify(status="unavailable", detail=f"Redis did not answer: {exc}"), 503
    return jsonify(status="ok")
