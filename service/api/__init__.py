"""The HTTP boundary: blueprints, request-body parsing and the JSON error handlers.

Every error leaves as `{"error": code, "message": text}` with the right status. Bad input is a 4xx
naming the field and what was expected; an unexpected exception is logged and becomes a JSON 500,
which is always a bug (the tests assert none occur).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from flask import Flask, Response, current_app, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from service.errors import ArtbanditError, StoreUnavailable, UnsupportedMediaType

if TYPE_CHECKING:
    from service.app import Artbandit

MAX_REPORTED_ERRORS = 3
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def service() -> Artbandit:
    """The app's per-process service state (see `service.app.Artbandit`)."""
    ext: Artbandit = current_app.extensions["artbandit"]
    return ext


# ------------------------------------------------------------------------------------------ request bodies
def json_bytes() -> bytes:
    """The raw JSON body. 415 unless Content-Type is JSON; 413 (werkzeug) past MAX_CONTENT_LENGTH."""
    if not request.is_json:
        got = request.mimetype or "none"
        raise UnsupportedMediaType(f"send the body as JSON with 'Content-Type: application/json' (got {got})")
    data = request.get_data(cache=False)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    # A chunked body (no Content-Length) is cut at the limit by werkzeug and the rest silently dropped:
    # if anything is left after the limit, refuse the request instead of parsing a truncated body.
    if limit is not None and request.content_length is None and len(data) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return data


def describe_validation(exc: ValidationError) -> tuple[str, str]:
    """(error code, message naming each bad field) for a pydantic ValidationError."""
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        detail = (errors[0].get("ctx") or {}).get("error", errors[0]["msg"])
        return "malformed_json", f"the request body is not valid JSON: {detail}"
    parts = []
    for err in errors[:MAX_REPORTED_ERRORS]:
        where = _field_path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not part of this request's schema; see /openapi.json)"
        elif err["type"] == "missing":
            msg = "this field is required"
        parts.append(f"{where}: {msg}")
    more = len(errors) - MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more error(s)")
    return "invalid_request", "; ".join(parts)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


# -------------------------------------------------------------------------------------- response bodies
class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON encoding done by orjson: a tenth of the stdlib's time per response, which matters at
    thousands of /impression answers a second. Compact, keys in insertion order; types orjson does not
    know go through Flask's `default` as before, and what orjson refuses (an integer beyond 64 bits
    echoed back in an error) falls back to the stdlib. NaN and infinities become null (the stats documents
    never contain them: `service.stats` maps them to None first)."""

    OPTIONS = orjson.OPT_NON_STR_KEYS

    def encode(self, obj: Any) -> bytes:
        """UTF-8 JSON of `obj` (also what `service.api.hot` answers with)."""
        try:
            return orjson.dumps(obj, default=self.default, option=self.OPTIONS)
        except TypeError:  # what orjson cannot encode (an int beyond 64 bits) the stdlib can
            return super().dumps(obj).encode()

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # indent=..., sort_keys=...: the stdlib encoder's options
            return super().dumps(obj, **kwargs)
        return self.encode(obj).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        return Response(self.encode(self._prepare_response_obj(args, kwargs)), mimetype=self.mimetype)


# ---------------------------------------------------------------------------------------------- errors
def error_response(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if "artbandit" in current_app.extensions:
        service().metrics.error(code)
    return response


INTERNAL_ERROR_MESSAGE = "an unexpected error occurred; it has been logged"


def domain_error_headers(exc: ArtbanditError) -> dict[str, str]:
    """The headers a domain error's response carries (the Flask handler and `service.api.hot`)."""
    headers = {}
    if isinstance(exc, StoreUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="artbandit"'
    return headers


def _domain_error(exc: ArtbanditError) -> Response:
    response = jsonify(exc.to_json())
    response.status_code = exc.status
    response.headers.update(domain_error_headers(exc))
    service().metrics.error(exc.code)
    return response


def _validation_error(exc: ValidationError) -> Response:
    code, message = describe_validation(exc)
    return error_response(code, message, 400)


def _redis_down(exc: Exception) -> Response:
    current_app.logger.warning("Redis unreachable on %s %r: %s", request.method, request.path, exc)
    return _domain_error(StoreUnavailable())


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status, (exc.name or "error").lower().replace(" ", "_"))
    if status == 404:
        message = f"no route {request.method} {request.path}; the API is described at /openapi.json"
    elif status == 405:
        allowed = ", ".join(sorted(m for m in (getattr(exc, "valid_methods", None) or []) if m != "OPTIONS"))
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"the request body is larger than the limit of {limit} bytes (setting max_body_bytes)"
    else:
        message = exc.description or exc.name
    keep = {k: v for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")}
    return error_response(code, message, status, keep)


def _unexpected(exc: Exception) -> Response:
    # %r: a path with encoded newlines cannot forge log lines
    current_app.logger.exception("unhandled error on %s %r", request.method, request.path)
    return error_response("internal_error", INTERNAL_ERROR_MESSAGE, 500)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ArtbanditError, _domain_error)
    app.register_error_handler(ValidationError, _validation_error)
    app.register_error_handler(RedisConnectionError, _redis_down)
    app.register_error_handler(RedisTimeoutError, _redis_down)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


# --------------------------------------------------------------------------------------- request timing
def _start_timer() -> None:
    g.artbandit_t0 = time.perf_counter()


def _record(response: Response) -> Response:
    t0 = g.get("artbandit_t0")
    if t0 is not None:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        service().metrics.observe_request(
            route, request.method, response.status_code, time.perf_counter() - t0
        )
    return response


def register_api(app: Flask) -> None:
    """Blueprints, error handlers and request timing."""
    from service.api import clicks, dashboard, health, impressions, metrics, openapi, stats, titles

    for module in (impressions, clicks, titles, stats, health, metrics, openapi, dashboard):
        app.register_blueprint(module.bp)
    register_error_handlers(app)
    app.before_request(_start_timer)
    app.after_request(_record)
