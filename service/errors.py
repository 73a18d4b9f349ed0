"""The service's domain errors: one flat list, each with its HTTP status and a stable error code.

Handlers render every one of them as JSON `{"error": code, "message": text}`; nothing else should turn
into an error response, and nothing may become a 500.
"""

from __future__ import annotations

from typing import Any


class ArtbanditError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        body.update(self.details)
        return body


class InvalidRequest(ArtbanditError):
    status, code = 400, "invalid_request"


class Unauthorized(ArtbanditError):
    status, code = 401, "unauthorized"


class Forbidden(ArtbanditError):
    status, code = 403, "forbidden"


class UnknownTitle(ArtbanditError):
    status, code = 404, "unknown_title"


class UnknownImpression(ArtbanditError):
    status, code = 404, "unknown_impression"


class LateClick(ArtbanditError):
    status, code = 410, "late_click"


class LateReward(ArtbanditError):
    status, code = 410, "late_reward"


class PayloadTooLarge(ArtbanditError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ArtbanditError):
    status, code = 415, "unsupported_media_type"


class StoreUnavailable(ArtbanditError):
    """Redis is unreachable or timed out; the client should retry after `retry_after` seconds."""

    status, code = 503, "store_unavailable"

    def __init__(
        self, message: str = "the event store is unavailable; retry shortly", retry_after: int = 1
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
