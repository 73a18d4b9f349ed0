"""Bearer-token checks: the admin API (ARTBANDIT_API_KEY, ARTBANDIT_API_KEYS), stats and dashboard
(ARTBANDIT_DASHBOARD_TOKEN), the data plane (ARTBANDIT_CLIENT_KEYS, through `service.web.data_plane`).

Tokens are compared with `hmac.compare_digest` on their UTF-8 bytes, so the time taken does not reveal
how much of a guess was right; against a list of keys every key is compared, whichever matches, so the
time does not reveal which one did either. No token at all is 401 (with `WWW-Authenticate: Bearer`); a
wrong one is 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Protocol

from service.errors import Forbidden, Unauthorized


class Headers(Protocol):
    """Anything with a `get(name)` for header values: werkzeug's Headers, a dict."""

    def get(self, key: str) -> str | None: ...


def bearer_token(headers: Headers) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when there is none."""
    return parse_bearer(headers.get("Authorization"))


def parse_bearer(value: str | None) -> str | None:
    """The token of an Authorization header's value, None when it is absent or empty; Unauthorized when
    it is not `Bearer <token>`."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    return token.strip()


def tokens_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def matches_any(given: str, keys: Sequence[str]) -> bool:
    """Whether `given` is one of `keys`; every key is compared (no early exit on a match)."""
    found = False
    for key in keys:
        found |= tokens_equal(given, key)
    return found


def _keys(api_keys: str | Sequence[str] | None) -> Sequence[str]:
    if api_keys is None:
        return ()
    return (api_keys,) if isinstance(api_keys, str) else api_keys


def require_api_key(headers: Headers, api_keys: str | Sequence[str] | None) -> None:
    """Admin routes: raise Unauthorized (no key configured or none sent) or Forbidden (wrong key).
    `api_keys`: `Settings.admin_keys` (one key as a string is accepted too)."""
    accepted = _keys(api_keys)
    if not accepted:
        raise Unauthorized("the admin API is disabled: start the service with ARTBANDIT_API_KEY set")
    token = bearer_token(headers)
    if token is None:
        raise Unauthorized("this route needs the admin key: send 'Authorization: Bearer <ARTBANDIT_API_KEY>'")
    if not matches_any(token, accepted):
        raise Forbidden("the admin key is wrong")


def require_client_key(authorization: str | None, client_keys: Sequence[str]) -> None:
    """Data-plane routes with client keys configured: raise Unauthorized (no key sent, or not as
    `Bearer <key>`) or Forbidden (not one of the keys). `authorization`: the header's value."""
    token = parse_bearer(authorization)
    if token is None:
        raise Unauthorized(
            "this route needs a client key: send 'Authorization: Bearer <one of ARTBANDIT_CLIENT_KEYS>'"
        )
    if not matches_any(token, client_keys):
        raise Forbidden("the client key is wrong")


def require_viewer(
    headers: Headers,
    query_token: str | None,
    dashboard_token: str | None,
    api_keys: str | Sequence[str] | None,
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
    if header_token is not None and matches_any(header_token, _keys(api_keys)):
        return
    raise Forbidden("the dashboard token is wrong")
