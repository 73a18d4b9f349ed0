"""A Python client for artbandit's data plane, on httpx.

    from service.client import ArtbanditClient

    with ArtbanditClient("http://artbandit:8000", timeout=0.1, api_key="admin-key", client_key="ck") as ab:
        ab.refresh_catalog()  # default artwork per title, for when the service is unreachable
        row = ab.page("viewer-42", {"romance": 0.8}, ["stranger-things", "the-crown"], defer=True)
        shown = [e["impression_id"] for e in row[:6] if e.get("impression_id")]
        ab.activate(shown)                      # the viewer scrolled to these
        ab.click(row[0]["impression_id"])       # and clicked this one
        ab.reward(row[0]["impression_id"], 42.0, event_id="play-1")  # minutes watched

One `httpx.Client` (keep-alive) per `ArtbanditClient`; every call has the client's timeout (or its own
`timeout=`). `page` and `impression` never raise for an unreachable, slow or failing (5xx) service: they
answer each title's default artwork from the catalog cached by `refresh_catalog` (or given as
`defaults=`), marked `fallback: True` with no impression id, as the service itself does when Redis is down;
a title without a cached default gets the entry `{"title_id", "error": "unavailable", "message"}`.
`activate`, `click` and `reward` raise `Unavailable` in that case (retry them: all three are idempotent
with respect to the join when retried — clicks count once, rewards carry an `event_id`), and
`RequestRejected` for a 4xx answer (its `status`, `code` and `message` are the service's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

DEFAULT_TIMEOUT = 0.1  # seconds: a page render should not wait longer for artwork choices


class Unavailable(Exception):
    """The service could not be reached, did not answer in time, or answered 5xx."""


class RequestRejected(Exception):
    """The service answered 4xx: the request was wrong (or the impression unknown or late)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class ArtbanditClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        api_key: str | None = None,
        defaults: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        client_key: str | None = None,
    ) -> None:
        """`api_key` is the admin key, sent as a bearer token by `refresh_catalog` only (GET /titles);
        `client_key` is sent by every data-plane call (page, impression, activate, click, reward) when the
        service requires one (ARTBANDIT_CLIENT_KEYS); `defaults` seeds the cached catalog (title id ->
        default artwork id); `transport` is httpx's (tests pass a WSGI or mock transport). To rotate the
        client key, build a new client with the new key (the service accepts both during a rotation)."""
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._admin = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._data = {"Authorization": f"Bearer {client_key}"} if client_key else {}
        self.defaults: dict[str, str] = dict(defaults or {})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ArtbanditClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------ catalog
    def refresh_catalog(self, timeout: float | None = None) -> dict[str, str]:
        """Cache every title's default artwork (GET /titles, admin key). Raises Unavailable or
        RequestRejected; the previous cache stays as it was then."""
        body = self._call("GET", "/titles", None, timeout, admin=True)
        for cfg in body["titles"]:
            self.defaults[cfg["title_id"]] = cfg.get("default_artwork") or cfg["artworks"][0]["id"]
        return dict(self.defaults)

    # ------------------------------------------------------------------------------ decisions
    def page(
        self,
        user_id: str,
        context: Mapping[str, float],
        titles: Sequence[str],
        defer: bool = False,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """POST /impressions: one entry per title, in order. Never raises for an unavailable service
        (default artworks instead); raises RequestRejected for a malformed page."""
        body = {"user_id": user_id, "context": dict(context), "titles": list(titles), "defer": defer}
        try:
            answer = self._call("POST", "/impressions", body, timeout)
        except Unavailable as exc:
            return self._fallback(titles, exc)
        entries: list[dict[str, Any]] = answer["impressions"]
        return entries

    def impression(
        self, title_id: str, user_id: str, context: Mapping[str, float], timeout: float | None = None
    ) -> dict[str, Any]:
        """POST /impression. Never raises for an unavailable service (the default artwork instead);
        raises RequestRejected for bad input or an unknown title."""
        body = {"title_id": title_id, "user_id": user_id, "context": dict(context)}
        try:
            return self._call("POST", "/impression", body, timeout)
        except Unavailable as exc:
            (entry,) = self._fallback([title_id], exc)
            if "error" in entry:
                raise
            entry.pop("title_id")
            return entry

    # ------------------------------------------------------------------------------ outcomes
    def activate(self, impression_ids: Iterable[str], timeout: float | None = None) -> dict[str, str]:
        """POST /activate: {id: activated | already_active | unknown | expired}."""
        body = {"impression_ids": list(impression_ids)}
        results: dict[str, str] = self._call("POST", "/activate", body, timeout)["results"]
        return results

    def click(self, impression_id: str, timeout: float | None = None) -> str:
        """POST /click: "recorded" or "duplicate"."""
        status: str = self._call("POST", "/click", {"impression_id": impression_id}, timeout)["status"]
        return status

    def reward(
        self, impression_id: str, value: float, event_id: str | None = None, timeout: float | None = None
    ) -> str:
        """POST /reward: "recorded" or "duplicate". Give an `event_id` so a retry cannot count twice."""
        body: dict[str, Any] = {"impression_id": impression_id, "value": value}
        if event_id is not None:
            body["event_id"] = event_id
        status: str = self._call("POST", "/reward", body, timeout)["status"]
        return status

    # ------------------------------------------------------------------------------ internals
    def _call(
        self, method: str, path: str, body: Any, timeout: float | None, admin: bool = False
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        headers = self._admin if admin else self._data
        try:
            response = self._http.request(method, path, json=body, headers=headers, **extra)
        except httpx.HTTPError as exc:  # connect/read timeouts, refused connections, protocol errors
            raise Unavailable(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 500:
            raise Unavailable(f"{method} {path}: HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise Unavailable(f"{method} {path}: the answer is not JSON") from exc
        if response.status_code >= 400:
            raise RequestRejected(
                response.status_code, str(answer.get("error", "")), str(answer.get("message", ""))
            )
        if not isinstance(answer, dict):
            raise Unavailable(f"{method} {path}: unexpected answer {answer!r}")
        return answer

    def _fallback(self, titles: Sequence[str], exc: Unavailable) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for title_id in titles:
            artwork = self.defaults.get(title_id)
            if artwork is None:
                message = f"service unavailable ({exc}) and no cached default artwork for this title"
                out.append({"title_id": title_id, "error": "unavailable", "message": message})
                continue
            out.append(
                {
                    "title_id": title_id,
                    "impression_id": None,
                    "artwork_id": artwork,
                    "propensity": 1.0,
                    "variant": None,
                    "policy": None,
                    "model_version": None,
                    "fallback": True,
                }
            )
        return out
