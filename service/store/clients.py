"""Redis clients for the two kinds of process, the Lua scripts, and a small circuit breaker.

API workers get short socket timeouts and no retries, so a dead or hung Redis costs a request at most
one `redis_timeout`; after a failure the breaker skips Redis for `cooldown` seconds, so the following
requests go straight to the degraded path. The learner and admin tools get patient timeouts and the
client's default retries.

A Redis Cluster is found out, not configured: `make_redis` asks the node `ARTBANDIT_REDIS_URL` names
(`INFO cluster`) and, when it is a cluster node, returns a `redis.cluster.RedisCluster` that discovers
the other nodes, routes every key by its slot (the `{title}` hash tag keeps a title on one shard),
follows MOVED and ASK, and refreshes its slot map after a failover. `Client` is either kind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

from service.config import Settings

PATIENT_TIMEOUT = 5.0  # seconds; learner and admin connections
BREAKER_COOLDOWN = 0.5  # seconds during which a worker does not try Redis after a failure
# Errors that mean "Redis is not reachable right now" (BusyLoadingError is a ConnectionError).
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)
# A client of one Redis or of a Redis Cluster: the commands artbandit uses exist on both.
Client = redis.Redis | RedisCluster


def make_redis(settings: Settings, *, for_api: bool) -> Client:
    """A client for `settings.redis_url` (bytes responses): a `RedisCluster` when that node is part of a
    cluster, else a `Redis`. Create one per process, after forking."""
    timeout = settings.redis_timeout if for_api else PATIENT_TIMEOUT
    # API workers never retry (a request degrades instead); the learner and admin tools use the
    # client's default retries, which on a cluster refresh the slot map between attempts.
    retry: dict[str, Any] = {"retry": Retry(NoBackoff(), 0)} if for_api else {}
    return connect(settings.redis_url, timeout, retry)


def connect(url: str, timeout: float = PATIENT_TIMEOUT, options: dict[str, Any] | None = None) -> Client:
    """A client for the Redis (or the Redis Cluster) that `url` names, bytes responses."""
    options = options or {}
    single = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False, **options
    )
    try:
        clustered = is_cluster(single)
    except UNAVAILABLE:
        return single  # not reachable now: the single-node client fails and recovers as it always did
    if not clustered:
        return single
    single.close()
    return RedisCluster.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False, **options
    )


def is_cluster(r: Client) -> bool:
    """Whether `r` talks to a Redis Cluster node (`cluster_enabled:1`)."""
    if isinstance(r, RedisCluster):
        return True
    info = r.info("cluster")
    return bool(int(info.get("cluster_enabled", 0)))


class ShardUnavailable(redis.ConnectionError):
    """One node of a cluster failed a call just now (or a moment ago): its titles degrade, not the rest."""


def trips_breaker(r: Client) -> bool:
    """Whether a Redis failure should open a worker's breaker (skip Redis for every title a moment). On
    one Redis it should. On a cluster, no: the other shards still serve their titles, and calls to a
    failed shard fail fast by themselves (`ClusterScriptRunner` keeps a breaker per node)."""
    return not isinstance(r, RedisCluster)


def load_script(r: Client, name: str) -> Script:
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


def run_pipelined(r: Client, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]) -> list[Any]:
    """Script calls in one pipeline (on a cluster: one round trip per node); the replies in order. A
    call that met NOSCRIPT — a cluster pipeline does not load scripts, and a promoted replica has none
    — never ran: it is run again alone, which loads the script. Any other error reply is raised."""
    if not calls:
        return []
    pipe = r.pipeline(transaction=False)
    for script, call_keys, args in calls:
        script(keys=call_keys, args=args, client=pipe)
    replies = pipe.execute(raise_on_error=False)
    out = []
    for (script, call_keys, args), reply in zip(calls, replies, strict=True):
        if isinstance(reply, redis.exceptions.NoScriptError):
            reply = script(keys=call_keys, args=args)
        elif isinstance(reply, Exception):
            raise reply
        out.append(reply)
    return out
