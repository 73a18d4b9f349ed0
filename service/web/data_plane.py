"""Who may call the data plane: the routes that decide and reward, and their one key check.

`ROUTES` is the declared set of data-plane paths. With `client_keys` configured (ARTBANDIT_CLIENT_KEYS),
every request to one of them needs `Authorization: Bearer <one of the keys>`: 401 without (or not as
Bearer), 403 with a wrong key, compared in constant time (`service.web.auth`), before the body is read.
Without client keys the data plane is open, as it always was; `/readyz` says `"data_plane": "open"` and
`create_app` logs a warning.

The same check runs in both places a data-plane request can be served: `service.web.hot` (the WSGI
middleware serving the hottest routes) calls `check`, and `install` puts it in front of every Flask view
(a before-request hook keyed on the path, so a route added later under one of these paths is covered the
moment it exists). docs/deploy.md has the threat model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import Flask, request

from service.web.auth import require_client_key
from service.web.parsing import service

log = logging.getLogger(__name__)

# Every path that decides (logs a decision) or rewards (moves what the learner learns).
ROUTES = frozenset({"/impression", "/impressions", "/activate", "/click", "/reward"})


def check(authorization: str | None, client_keys: Sequence[str]) -> None:
    """Raise Unauthorized or Forbidden unless the data plane is open or the header carries a client key."""
    if client_keys:
        require_client_key(authorization, client_keys)


def state(client_keys: Sequence[str]) -> str:
    """"keyed" or "open" (what /readyz reports)."""
    return "keyed" if client_keys else "open"


def _guard() -> None:
    if request.path in ROUTES:
        check(request.headers.get("Authorization"), service().settings.client_keys)


def install(app: Flask) -> None:
    """The check before every Flask view of a data-plane path (register after the request timer, so a
    refused request is timed and counted like any other)."""
    app.before_request(_guard)
    if not app.extensions["artbandit"].settings.client_keys:
        log.warning(
            "the data plane (%s) is open: anyone who reaches this port can decide and reward; "
            "set ARTBANDIT_CLIENT_KEYS to require a key (docs/deploy.md)",
            ", ".join(sorted(ROUTES)),
        )
