"""GET /healthz: the process is alive (no Redis call). GET /readyz: Redis answers a PING; it also says
whether the data plane needs client keys (`"data_plane": "keyed"`) or is open to anyone who reaches the
port (`"open"`, no ARTBANDIT_CLIENT_KEYS)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError

from service.web import data_plane
from service.web.parsing import service

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response | tuple[Response, int]:
    ext = service()
    plane = data_plane.state(ext.settings.client_keys)
    try:
        ext.redis.ping()
    except RedisError as exc:
        return jsonify(status="unavailable", detail=f"Redis did not answer: {exc}", data_plane=plane), 503
    return jsonify(status="ok", data_plane=plane)
