"""Bearer-token checks: the admin API (ARTBANDIT_API_KEY), stats and dashboard (ARTBANDIT_DASHBOARD_TOKEN).

Tokens are compared with `hmac.compare_digest` on their UTF-8 bytes, so the time taken does not reveal
how much of a guess was right. No token at all is 401 (with `WWW-Authenticate: Bearer`); a wrong one is 403.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from service.errors import Forbidden, Unauthorized


class Headers(Protocol):
    """Anything with a `get(name)` for header values: werkzeug's Headers, a dict."""

    def get(self, key: str) -> str | None: ...


def bearer_token(headers: Headers) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when there is none."""
    value = headers.get("Authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    return token.strip()


def tokens_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_api_key(headers: Headers, api_key: str | None) -> None:
    """Admin routes: raise Unauthorized (no key configured or none sent) or Forbidden (wrong key)."""
    if not api_key:
        raise Unauthorized("the admin API is disabled: start the service with ARTBANDIT_API_KEY set")
    token = bearer_token(headers)
    if token is None:
        raise Unauthorized("this route needs the admin key: send 'Authorization: Bearer <ARTBANDIT_API_KEY>'")
    if not tokens_equal(token, api_key):
        raise Forbidden("the admin key is wrong")


def require_viewer(
    headers: Headers, query_token: str | None, dashboard_token: str | None, api_key: str | None
) -> None:
    """Stats and dashboard: open when no dashboard token is configured; otherwise the dashboard token (as a
    Bearer header or `?token=`) or the admin key (as a Bearer header only) is needed."""
    if not dashboard_token:
        return
    header_token = bearer_token(headers)
    token = header_token or query_token
    if not token:
        raise Unauthorized(
            "statistics need the dashboard token: send 'Authorization: Bearer <token>' or ?token="
        )
    if tokens_equal(token, dashboard_token):
        return
    # The admin key only counts in the header: in a URL it would be copied into the page's links, the
    # browser's history and proxy logs.
    if api_key is not None and header_token is not None and tokens_equal(header_token, api_key):
        return
    raise Forbidden("the dashboard token is wrong")
