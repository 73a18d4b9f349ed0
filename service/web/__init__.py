"""The HTTP boundary: everything that speaks HTTP, and nothing else does.

- `parsing`   request bodies (JSON only, size-limited) and pydantic errors as messages; `service()`
- `encoding`  orjson as Flask's JSON provider
- `handlers`  `{"error", "message"}` for every failure, request timing
- `hot`       WSGI middleware serving POST /impression and /click without Flask's per-request work
- `data_plane` the declared set of deciding and rewarding routes and their client-key check
- one blueprint per resource: `impressions`, `pages` (POST /impressions), `clicks`, `rewards`,
  `activations`, `titles`, `stats`, `health`, `metrics`,
  `openapi`, `dashboard`; `schemas` (pydantic request/response models), `auth` (keys, tokens)

Blueprints parse, call the domain (`service.serving`, `service.join`, `service.store`,
`service.reporting`) through `service()`, and return a dict.
"""

from __future__ import annotations

from flask import Flask

from service.web import (
    activations,
    clicks,
    dashboard,
    data_plane,
    handlers,
    health,
    impressions,
    metrics,
    openapi,
    pages,
    rewards,
    stats,
    titles,
)


def register_api(app: Flask) -> None:
    """Blueprints, error handlers, request timing and the data plane's key check."""
    for module in (
        impressions,
        pages,
        clicks,
        rewards,
        activations,
        titles,
        stats,
        health,
        metrics,
        openapi,
        dashboard,
    ):
        app.register_blueprint(module.bp)
    handlers.install(app)
    data_plane.install(app)  # after the request timer: refused requests are timed too
