"""GET /openapi.json: the API description (OpenAPI 3.1), generated from the pydantic models.

Request and response bodies come from `service.web.schemas` and `service.catalog.TitleConfig`, so the document
cannot drift from what the handlers validate.
"""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.catalog import TitleConfig
from service.web.parsing import service
from service.web.schemas import (
    ActivateRequest,
    ActivateResponse,
    ClickRequest,
    ClickResponse,
    ErrorResponse,
    Health,
    ImpressionRequest,
    ImpressionResponse,
    PageEntry,
    PageRequest,
    PageResponse,
    RewardRequest,
    RewardResponse,
    TitleDeleted,
)

bp = Blueprint("openapi", __name__)
REF = "#/components/schemas/{model}"
ERRORS = {
    400: "invalid input: malformed JSON, a wrong type, an unknown or non-finite feature (message says which)",
    401: "no key sent, or not as 'Bearer <key>' (or the admin API is disabled)",
    403: "wrong key",
    404: "unknown title, impression or route",
    405: "method not allowed on this route",
    410: "click or reward after the attribution window: counted as late, not learned",
    413: "request body larger than max_body_bytes",
    415: "the body is not sent as application/json",
    503: "Redis is unreachable; retry after the Retry-After header's seconds",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, Any], ok_text: str, *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok_text, **_json(ok)}}
    for status in errors:
        out[str(status)] = {"description": ERRORS[status], **_json(_ref("ErrorResponse"))}
        if status == 503:
            out[str(status)]["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}
            }
    return out


def _components() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        ImpressionRequest, ImpressionResponse, ClickRequest, ClickResponse, ErrorResponse, Health,
        TitleDeleted, TitleConfig, PageRequest, PageEntry, PageResponse, ActivateRequest, ActivateResponse,
        RewardRequest, RewardResponse,
    ]  # fmt: skip
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    body = copy.deepcopy(schemas["TitleConfig"])
    body["title"] = "TitleBody"
    body["description"] = "PUT /titles/{title_id}: a title's config; the URL names the title."
    body["properties"].pop("title_id", None)
    body["required"] = [r for r in body.get("required", []) if r != "title_id"]
    schemas["TitleBody"] = body
    return schemas


def _links(impression_id: str) -> dict[str, Any]:
    """OpenAPI links from an answer carrying an impression id (`impression_id`, a runtime expression) to
    the routes that take it, so a stateful client or fuzzer can follow the id."""
    return {
        "click": {"operationId": "click", "requestBody": {"impression_id": impression_id}},
        "reward": {"operationId": "reward", "requestBody": {"impression_id": impression_id, "value": 1.0}},
        "activate": {"operationId": "activate", "requestBody": {"impression_ids": [impression_id]}},
    }


def _with_links(responses: dict[str, Any], impression_id: str) -> dict[str, Any]:
    responses["200"]["links"] = _links(impression_id)
    return responses


def _title_id_param() -> dict[str, Any]:
    return {"name": "title_id", "in": "path", "required": True, "schema": {"type": "string"}}


def build_openapi(keyed: bool = False) -> dict[str, Any]:
    """The document; `keyed`: the data plane needs client keys (Settings.client_keys is not empty), so
    its operations declare the `clientKey` scheme and answer 401/403."""
    admin: list[dict[str, list[str]]] = [{"apiKey": []}]
    client: dict[str, Any] = {"security": [{"clientKey": []}]} if keyed else {}
    auth: tuple[int, ...] = (401, 403) if keyed else ()
    title_list = {
        "type": "object",
        "properties": {
            "titles": {"type": "array", "items": _ref("TitleConfig")},
            "catalog_version": {"type": "integer"},
        },
        "required": ["titles", "catalog_version"],
    }
    saved = {
        "type": "object",
        "properties": {"title": _ref("TitleConfig"), "catalog_version": {"type": "integer"}},
        "required": ["title", "catalog_version"],
    }
    paths: dict[str, Any] = {
        "/impression": {"post": {
            "summary": "Choose the artwork a viewer sees for a title (and log the decision)",
            "operationId": "impression", **client,
            "requestBody": {"required": True, **_json(_ref("ImpressionRequest"))},
            "responses": _with_links(
                _responses(_ref("ImpressionResponse"), "the chosen artwork", 400, *auth, 404, 413, 415, 503),
                "$response.body#/impression_id",
            ),
        }},
        "/impressions": {"post": {
            "summary": "Choose the artwork of every title on a viewer's page (1-100 titles, one request, "
            "logged in one Redis round trip per node); per-title errors are entries, a malformed page is a "
            "400",
            "operationId": "impressions", **client,
            "requestBody": {"required": True, **_json(_ref("PageRequest"))},
            "responses": _with_links(
                _responses(
                    _ref("PageResponse"), "one entry per title, in request order", 400, *auth, 413, 415
                ),
                "$response.body#/impressions/0/impression_id",
            ),
        }},
        "/activate": {"post": {
            "summary": "Deferred impressions (defer: true) the viewer has now been shown; idempotent",
            "operationId": "activate", **client,
            "requestBody": {"required": True, **_json(_ref("ActivateRequest"))},
            "responses": _responses(
                _ref("ActivateResponse"), "per id: activated, already_active, unknown or expired",
                400, *auth, 413, 415, 503,
            ),
        }},
        "/reward": {"post": {
            "summary": "Report a graded reward for an impression (combined by the title's reward rule)",
            "operationId": "reward", **client,
            "requestBody": {"required": True, **_json(_ref("RewardRequest"))},
            "responses": _responses(
                _ref("RewardResponse"),
                "recorded, or duplicate (second reward under first, repeated event_id)",
                400, *auth, 404, 410, 413, 415, 503,
            ),
        }},
        "/click": {"post": {
            "summary": "Report a click on an impression's artwork",
            "operationId": "click", **client,
            "requestBody": {"required": True, **_json(_ref("ClickRequest"))},
            "responses": _responses(
                _ref("ClickResponse"), "recorded (first click in the window) or duplicate",
                400, *auth, 404, 410, 413, 415, 503,
            ),
        }},
        "/titles": {"get": {
            "summary": "List every title's config", "operationId": "listTitles", "security": admin,
            "responses": _responses(title_list, "all titles", 401, 403, 503),
        }},
        "/titles/{title_id}": {
            "parameters": [_title_id_param()],
            "get": {
                "summary": "One title's config", "operationId": "getTitle", "security": admin,
                "responses": _responses(_ref("TitleConfig"), "the title", 401, 403, 404, 503),
            },
            "put": {
                "summary": "Create or replace a title", "operationId": "putTitle", "security": admin,
                "requestBody": {"required": True, **_json(_ref("TitleBody"))},
                "responses": _responses(
                    saved, "saved; workers pick it up on their next refresh", 400, 401, 403, 413, 415, 503
                ),
            },
            "delete": {
                "summary": "Delete a title", "operationId": "deleteTitle", "security": admin,
                "responses": _responses(_ref("TitleDeleted"), "deleted", 401, 403, 404, 503),
            },
        },
        "/stats/{title_id}": {"get": {
            "summary": "A title's statistics: CTR per variant and artwork, lift, SRM, series, learner health,"
            " taste segments × artworks, last-hour trend (docs/api.md)",
            "operationId": "titleStats",
            "parameters": [_title_id_param()],
            "responses": _responses({"type": "object"}, "the statistics document", 401, 403, 404, 503),
        }},
        "/healthz": {"get": {
            "summary": "The process is alive", "operationId": "healthz",
            "responses": _responses(_ref("Health"), "alive"),
        }},
        "/readyz": {"get": {
            "summary": "Redis is reachable", "operationId": "readyz",
            "responses": {
                "200": {"description": "ready", **_json(_ref("Health"))},
                "503": {"description": "Redis unreachable", **_json(_ref("Health"))},
            },
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics", "operationId": "metrics",
            "responses": {"200": {
                "description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}},
            }},
        }},
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "artbandit",
            "version": _version(),
            "description": "Personalized artwork selection: a contextual-bandit service. Every error is "
            '`{"error": code, "message": text}`.',
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an admin key: ARTBANDIT_API_KEY or one of ARTBANDIT_API_KEYS",
                },
                "clientKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a data-plane key, one of ARTBANDIT_CLIENT_KEYS (when set)",
                },
            },
        },
    }


def _version() -> str:
    try:
        return version("artbandit")
    except PackageNotFoundError:
        return "0+unknown"


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(build_openapi(keyed=bool(service().settings.client_keys)))
