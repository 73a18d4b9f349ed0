"""The data-plane routes (POST /impression, /impressions, /click, /reward, /activate) without Flask's
per-request machinery.

Flask's request context, URL matching, hooks and response object cost about as much per request as
everything artbandit does for an impression (docs/benchmarks.md, "HTTP API"). `HotPath` is WSGI
middleware in front of the Flask app that serves the two routes every viewer hits directly, with the
same code (`impressions.answer`, `clicks.answer`), the same JSON errors and the same metrics as the
Flask views; everything else, and every request it is not sure about, goes to Flask untouched:

- with client keys configured, the key is checked first (`service.web.data_plane.check`, the same check
  as Flask's), before anything else is looked at or read: 401/403 come from here;
- only `POST` with exactly `/impression` or `/click`, a JSON content type and a Content-Length within
  the body limit is served here; wrong method, other content types, chunked or oversized bodies go to
  Flask before anything is read, so 405/413/415 come from the one place that defines them;
- validation errors and domain errors (unknown title, bad context, late or unknown click, store
  unavailable) are rendered exactly as the Flask error handlers render them (`{"error", "message"}`,
  Retry-After on 503) and counted in the same metrics;
- anything unexpected is logged and answered with the same JSON 500 as Flask's handler (a bug).

The Flask views stay: the test client, `/openapi.json` and any deployment that mounts the Flask app
without this wrapper get the same behaviour through them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from flask import Flask
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.errors import ArtbanditError, StoreUnavailable
from service.web import activations, clicks, data_plane, impressions, pages, rewards
from service.web.encoding import FastJSONProvider
from service.web.handlers import INTERNAL_ERROR_MESSAGE, domain_error_headers
from service.web.parsing import describe_validation

if TYPE_CHECKING:
    from service.state import Artbandit

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = Callable[["Artbandit", bytes], dict[str, Any]]
_ROUTES: dict[str, Answer] = {
    "/impression": impressions.answer,
    "/impressions": pages.answer,
    "/click": clicks.answer,
    "/reward": rewards.answer,
    "/activate": activations.answer,
}
_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}
EXTENSION = "artbandit.hot_path"  # app.extensions key of the installed HotPath (introspection, tests)


def is_json_type(content_type: str) -> bool:
    """What werkzeug's `request.is_json` accepts: application/json or application/*+json."""
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


class HotPath:
    """`HotPath.install(app)`: serve the two hot routes, hand everything else to Flask."""

    @classmethod
    def install(cls, app: Flask) -> HotPath:
        hot = cls(app)
        app.wsgi_app = hot  # type: ignore[method-assign]  # Flask's documented place for WSGI middleware
        app.extensions[EXTENSION] = hot
        return hot

    def __init__(self, app: Flask) -> None:
        self.flask: WSGIApp = app.wsgi_app  # the Flask app proper (every other request)
        self._ext: Artbandit = app.extensions["artbandit"]
        self._limit: int | None = app.config.get("MAX_CONTENT_LENGTH")
        if not isinstance(app.json, FastJSONProvider):  # both paths must encode alike
            raise TypeError("HotPath needs the app's FastJSONProvider (create_app installs it first)")
        self._encode = app.json.encode
        self._client_keys = self._ext.settings.client_keys
        unkeyed = set(_ROUTES) - data_plane.ROUTES  # every route served here is keyed like Flask's
        if unkeyed:
            raise TypeError(f"hot routes outside service.web.data_plane.ROUTES: {sorted(unkeyed)}")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = environ.get("PATH_INFO", "")
        answer = _ROUTES.get(route)
        if answer is None or environ.get("REQUEST_METHOD") != "POST":
            return self.flask(environ, start_response)
        started = time.perf_counter()
        if self._client_keys:
            try:
                data_plane.check(environ.get("HTTP_AUTHORIZATION"), self._client_keys)
            except ArtbanditError as exc:
                return self._respond(route, *self._domain(exc), started, start_response)
        length_text = environ.get("CONTENT_LENGTH") or ""
        if not length_text.isdigit() or not is_json_type(environ.get("CONTENT_TYPE") or ""):
            return self.flask(environ, start_response)
        length = int(length_text)
        if self._limit is not None and length > self._limit:
            return self.flask(environ, start_response)
        body = environ["wsgi.input"].read(length)
        return self._respond(route, *self._answer(answer, body, environ), started, start_response)

    def _respond(
        self,
        route: str,
        status: int,
        payload: dict[str, Any],
        headers: list[tuple[str, str]],
        started: float,
        start_response: Callable[..., Any],
    ) -> list[bytes]:
        out = self._encode(payload)
        start_response(
            _STATUS_LINES.get(status, str(status)),
            [("Content-Type", "application/json"), ("Content-Length", str(len(out))), *headers],
        )
        self._ext.metrics.observe_request(route, "POST", status, time.perf_counter() - started)
        return [out]

    def _answer(
        self, answer: Answer, body: bytes, environ: dict[str, Any]
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """(status, JSON body, extra headers), rendered as `service.web`'s error handlers do."""
        metrics = self._ext.metrics
        try:
            return 200, answer(self._ext, body), []
        except ValidationError as exc:
            code, message = describe_validation(exc)
            metrics.error(code)
            return 400, {"error": code, "message": message}, []
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("Redis unreachable on POST %r: %s", environ.get("PATH_INFO"), exc)
            return self._domain(StoreUnavailable())
        except ArtbanditError as exc:
            return self._domain(exc)
        except Exception:
            log.exception("unhandled error on POST %r", environ.get("PATH_INFO"))
            metrics.error("internal_error")
            return 500, {"error": "internal_error", "message": INTERNAL_ERROR_MESSAGE}, []

    def _domain(self, exc: ArtbanditError) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        self._ext.metrics.error(exc.code)
        return exc.status, exc.to_json(), list(domain_error_headers(exc).items())
