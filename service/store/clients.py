"""Redis clients for the two kinds of process, the Lua scripts, and a small circuit breaker.

API workers get short socket timeouts and no retries, so a dead or hung Redis costs a request at most
one `redis_timeout`; after a failure the breaker skips Redis for `cooldown` seconds, so the following
requests go straight to the degraded path. The learner and admin tools get patient timeouts and the
client's default retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib import resources

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from service.config import Settings

PATIENT_TIMEOUT = 5.0  # seconds; learner and admin connections
BREAKER_COOLDOWN = 0.5  # seconds during which a worker does not try Redis after a failure
# Errors that mean "Redis is not reachable right now" (BusyLoadingError is a ConnectionError).
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)


def make_redis(settings: Settings, *, for_api: bool) -> redis.Redis:
    """A client for `settings.redis_url` (bytes responses). Create one per process, after forking."""
    if for_api:
        return redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=PATIENT_TIMEOUT,
        socket_connect_timeout=PATIENT_TIMEOUT,
        decode_responses=False,
    )


def load_script(r: redis.Redis, name: str) -> Script:
    """Register `service/store/lua/<name>.lua` on the client. Calls go by EVALSHA; after a Redis restart the
    first call meets NOSCRIPT and redis-py loads the script again by itself."""
    source = resources.files("service.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    return r.register_script(source)


class CircuitBreaker:
    """After a failure, `available()` is False for `cooldown` seconds; then one request tries again."""

    def __init__(
        self, cooldown: float = BREAKER_COOLDOWN, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not cooldown >= 0:
            raise ValueError(f"cooldown must be >= 0 seconds, got {cooldown!r}")
        self.cooldown = cooldown
        self._clock = clock
        self._open_until = 0.0
        self._lock = threading.Lock()
        self.failures = 0

    def available(self) -> bool:
        return self._clock() >= self._open_until

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            self._open_until = self._clock() + self.cooldown

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


def redact_url(url: str) -> str:
    """A Redis URL without its password, for logs and banners."""
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"
