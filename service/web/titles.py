"""Admin API, behind the API key (`Authorization: Bearer <ARTBANDIT_API_KEY>`):

    GET    /titles              every title's config and the catalog version
    PUT    /titles/<title_id>   create or replace a title: artworks, taste features, policy or experiment
    GET    /titles/<title_id>   one title's config
    DELETE /titles/<title_id>   remove a title (its logs and models stay until retention drops them)

The body of PUT is `service.catalog.TitleConfig` without `title_id` (the URL names the title); a config is
accepted only if every variant's policy can be built from it. API workers pick changes up on their next
refresh (they watch the catalog version), without a restart.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import TypeAdapter

from service.catalog import TitleConfig, parse_title
from service.errors import InvalidRequest, UnknownTitle
from service.store import catalog
from service.web.auth import require_api_key
from service.web.parsing import json_bytes, service

bp = Blueprint("titles", __name__)
JSON_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


@bp.before_request
def _admin_only() -> None:
    require_api_key(request.headers, service().settings.admin_keys)


def title_json(cfg: TitleConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json", exclude_none=True)


@bp.get("/titles")
def list_titles() -> Response:
    r = service().admin_redis
    titles = catalog.list_titles(r)
    return jsonify(titles=[title_json(t) for t in titles], catalog_version=catalog.catalog_version(r))


@bp.get("/titles/<title_id>")
def get_title(title_id: str) -> Response:
    cfg = catalog.load_title(service().admin_redis, title_id)
    if cfg is None:
        raise UnknownTitle(f"no title {title_id!r}; GET /titles lists them")
    return jsonify(title_json(cfg))


@bp.put("/titles/<title_id>")
def put_title(title_id: str) -> Response:
    body = JSON_OBJECT.validate_json(json_bytes())
    if body.get("title_id", title_id) != title_id:
        raise InvalidRequest(
            f"title_id in the body ({body['title_id']!r}) differs from the URL ({title_id!r})"
        )
    cfg = parse_title(title_id, body)
    version = catalog.save_title(service().admin_redis, cfg)
    return jsonify(title=title_json(cfg), catalog_version=version)


@bp.delete("/titles/<title_id>")
def delete_title(title_id: str) -> Response:
    if not catalog.delete_title(service().admin_redis, title_id):
        raise UnknownTitle(f"no title {title_id!r}; GET /titles lists them")
    return jsonify(deleted=title_id)
