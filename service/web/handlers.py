"""The JSON error handlers and request timing, installed on the app by `register_api`.

Every error leaves as `{"error": code, "message": text}` with the right status. Bad input is a 4xx
naming the field and what was expected; an unexpected exception is logged and becomes a JSON 500,
which is always a bug (the tests assert none occur).
"""

from __future__ import annotations

import time

from flask import Flask, Response, current_app, g, jsonify, request
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from service.errors import ArtbanditError, StoreUnavailable
from service.web.parsing import describe_validation, service

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


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
    """The headers a domain error's response carries (the Flask handler and `service.web.hot`)."""
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


def install(app: Flask) -> None:
    """The error handlers and the request timer."""
    register_error_handlers(app)
    app.before_request(_start_timer)
    app.after_request(_record)
