"""Request bodies and the per-process state a view works with.

`json_bytes` returns the raw JSON body (415 unless JSON, 413 past the body limit, chunked bodies
included); `describe_validation` turns a pydantic error into `(code, message)` naming each bad field;
`service()` is the app's `Artbandit` (`service.state`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, request
from pydantic import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from service.errors import UnsupportedMediaType

if TYPE_CHECKING:
    from service.state import Artbandit

MAX_REPORTED_ERRORS = 3


def service() -> Artbandit:
    """The app's per-process service state (see `service.state.Artbandit`)."""
    ext: Artbandit = current_app.extensions["artbandit"]
    return ext


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
