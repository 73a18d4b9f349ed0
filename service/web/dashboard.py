"""The dashboard: server-rendered HTML pages and their static assets.

    GET /dashboard                  titles overview
    GET /dashboard/<title_id>       one title (its JSON, the same numbers: GET /stats/<title_id>)
    GET /dashboard/static/<file>    CSS and the refresh script (vendored, no CDN)

Data comes from `current_app.extensions["artbandit"]` (see `DashboardSource`). With the setting
`dashboard_token`, pages need it (or the admin key) as `?token=` or `Authorization: Bearer`, exactly like
the stats API; static files need nothing. Pages carry a strict Content-Security-Policy (this origin only,
plus inline `data:` images and the image origins the operator configured, `ARTBANDIT_IMAGE_ORIGINS`) and
send no Referer, so a token in the URL does not leak.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from flask import Blueprint, Response, current_app, render_template, request, url_for
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.config import Settings, image_origins
from service.errors import ArtbanditError, StoreUnavailable, UnknownTitle
from service.reporting import dashboard as view
from service.reporting import insights_view
from service.web.auth import require_viewer

REFRESH_MS = 5000
TITLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # service.catalog.Identifier
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def csp(origins: tuple[str, ...] = ()) -> str:
    """The pages' policy; `origins` (validated by `config.image_origins`) join `img-src` and nothing else."""
    if not origins:
        return CSP
    return CSP.replace("img-src 'self' data:;", f"img-src 'self' data: {' '.join(origins)};")

bp = Blueprint(
    "dashboard", __name__, url_prefix="/dashboard",
    template_folder="../templates", static_folder="../static", static_url_path="/static",
)


class DashboardSource(Protocol):
    """What the app puts in `app.extensions["artbandit"]` (`service.state.Artbandit`) for the dashboard."""

    settings: Settings

    def stats_for(self, title_id: str) -> dict[str, Any] | None:
        """`stats.title_stats(...)` of the title, or None when there is no such title."""

    def titles_overview(self) -> list[dict[str, Any]]:
        """`stats.overview_row(...)` of every title."""


def _source() -> DashboardSource:
    source: DashboardSource = current_app.extensions["artbandit"]
    return source


@bp.before_request
def _require_viewer() -> None:
    if request.endpoint == "dashboard.static":
        return
    settings = _source().settings
    require_viewer(request.headers, request.args.get("token"), settings.dashboard_token, settings.admin_keys)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "dashboard.static":
        response.headers["Content-Security-Policy"] = csp(image_origins(_source().settings.image_origins))
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(ArtbanditError)
def _error(exc: ArtbanditError) -> tuple[str, int, dict[str, str]]:
    """Errors of a page are pages too (the app's handlers would answer JSON)."""
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="artbandit"'
    if isinstance(exc, StoreUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    context = _page_context(keep_token=exc.status not in (401, 403))  # never echo a refused token
    if exc.status < 500:
        context["refresh_ms"] = 0  # a 5xx page keeps retrying and recovers by itself; a 4xx page would not
    context.update(status=exc.status, code=exc.code, message=exc.message)
    return render_template("dashboard_error.html", **context), exc.status, headers


@bp.errorhandler(RedisConnectionError)
@bp.errorhandler(RedisTimeoutError)
def _redis_down(exc: Exception) -> tuple[str, int, dict[str, str]]:
    current_app.logger.warning("Redis unreachable on %s %s: %s", request.method, request.path, exc)
    return _error(StoreUnavailable())


def _link_args() -> dict[str, Any]:
    """Keep a `?token=` on the page's own links (the refresh script reuses the page URL)."""
    token = request.args.get("token")
    return {"token": token} if token else {}


def _page_context(keep_token: bool = True) -> dict[str, Any]:
    link_args = _link_args() if keep_token else {}
    home = url_for("dashboard.overview", **link_args)
    return {"refresh_ms": REFRESH_MS, "home": home, "link_args": link_args}


@bp.get("")
def overview() -> str:
    source_rows = _source().titles_overview()
    rows = view.overview_view(source_rows)
    for row, raw in zip(rows, source_rows, strict=True):
        row["trend"] = insights_view.trend_view(raw.get("trend"))
    return render_template("dashboard_overview.html", titles=rows, **_page_context())


@bp.get("/<title_id>")
def title(title_id: str) -> str:
    doc = _source().stats_for(title_id) if TITLE_ID.match(title_id) else None
    if doc is None:
        raise UnknownTitle(f"no title {title_id!r}")
    json_url = url_for("stats.title_stats", title_id=title_id, **_link_args())
    origins = image_origins(_source().settings.image_origins)
    page = view.title_view(doc, origins)
    segments = insights_view.segment_view(doc, origins)
    return render_template(
        "dashboard_title.html", t=page, segments=segments, json_url=json_url, **_page_context()
    )
