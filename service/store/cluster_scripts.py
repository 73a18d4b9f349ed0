"""The request path's script calls on a Redis Cluster: one `ScriptRunner` per master node.

redis-py's `RedisCluster` owns the slot map: a call goes to the master its first key's slot maps to
(`keyslot`, `nodes_manager.get_node_from_slot`; every key of a call carries the same `{title}` hash
tag, so all are in that slot), through that node's runner — so calls to one shard are still combined
into one round trip across a worker's threads, exactly as on one Redis.

- MOVED (the slot has a new owner, e.g. after a failover or a resharding): the slot map is patched
  from the reply (`nodes_manager.move_slot`) and the call is sent once more to the new owner. A script
  that answered MOVED never ran, so this cannot apply it twice.
- ASK (the slot is migrating): the call is sent once to the importing node after ASKING.
- A connection error or timeout fails the call (its request degrades, as on one Redis), opens that
  node's own breaker — for a cooldown, calls to that node fail at once with `ShardUnavailable` while
  the other shards serve on — and asks for a slot-map refresh, run by the next call at most once per
  `REFRESH_INTERVAL`, so the calls after a master's replica is promoted go to the new master.
- `run_many` groups calls by node and sends each group as one batch, the groups in parallel: a page of
  titles costs one round trip per shard it touches, not one per title.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.exceptions import AskError, MovedError

from service.store.clients import UNAVAILABLE, CircuitBreaker, ShardUnavailable
from service.store.scripts import Arg, ScriptCall, ScriptRunner

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 0.25  # seconds between slot-map refreshes after errors
MAX_REDIRECTS = 3  # MOVED answers followed for one call before giving up


class ClusterScriptRunner:
    """`ScriptRunner`'s interface over a cluster. Create it in the process that uses it (after forking)."""

    def __init__(self, r: RedisCluster) -> None:
        self._r = r
        self._lock = threading.Lock()
        self._runners: dict[str, ScriptRunner] = {}
        self._breakers: dict[str, CircuitBreaker] = {}  # per node name
        self._refreshing = threading.Lock()  # one refresh at a time; calls meanwhile use the old map
        self._stale = False  # a node failed: refresh the slot map before the next call
        self._refreshed_at = 0.0
        self._pool: ThreadPoolExecutor | None = None
        self.refreshes = 0

    # ------------------------------------------------------------------------------ interface
    def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """EVALSHA on the master of `keys[0]`'s slot; raises as `ScriptRunner.run` does."""
        result = self._run_routed([(script, keys, args)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def run_many(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Each call's reply or exception (returned, not raised), in the order given: one batch per
        master node, the nodes' batches sent in parallel."""
        return self._run_routed(list(calls))

    def close(self) -> None:
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
            pool, self._pool = self._pool, None
        for runner in runners:
            runner.close()
        if pool is not None:
            pool.shutdown(wait=False)

    @property
    def batches(self) -> int:
        return sum(r.batches for r in list(self._runners.values()))

    @property
    def calls(self) -> int:
        return sum(r.calls for r in list(self._runners.values()))

    # ------------------------------------------------------------------------------ internals
    def _run_routed(self, calls: list[ScriptCall]) -> list[Any]:
        self._refresh_if_stale()
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _redirect in range(MAX_REDIRECTS + 1):
            groups: dict[str, tuple[ClusterNode, list[int]]] = {}
            for i in todo:
                node = self._node_of(calls[i][1])
                groups.setdefault(node.name, (node, []))[1].append(i)
            self._send_groups(calls, groups, results)
            todo = []
            for i, result in enumerate(results):
                if isinstance(result, MovedError):
                    self._moved(result)
                    todo.append(i)
                elif isinstance(result, AskError):
                    results[i] = self._asking(result, calls[i])
                elif isinstance(result, UNAVAILABLE):
                    self._stale = True
            if not todo:
                return results
        return results  # still MOVED after MAX_REDIRECTS: the caller gets the MovedError

    def _send_groups(
        self, calls: list[ScriptCall], groups: dict[str, tuple[ClusterNode, list[int]]], results: list[Any]
    ) -> None:
        def send(node: ClusterNode, indexes: list[int]) -> None:
            breaker = self._breaker(node)
            replies: list[Any]
            if not breaker.available():
                replies = [ShardUnavailable(f"{node.name} failed a moment ago")] * len(indexes)
            else:
                try:
                    replies = self._runner(node).run_many([calls[i] for i in indexes])
                except Exception as exc:  # the whole group failed (e.g. no reply in time): each call
                    replies = [exc] * len(indexes)
                down = next((r for r in replies if isinstance(r, UNAVAILABLE)), None)
                if down is not None:
                    breaker.failed()
                    log.warning(
                        "shard %s failed (%s): its titles degrade for %g s", node.name, down, breaker.cooldown
                    )
                    replies = [
                        ShardUnavailable(f"{node.name}: {r}") if isinstance(r, UNAVAILABLE) else r
                        for r in replies
                    ]
            for i, reply in zip(indexes, replies, strict=True):
                results[i] = reply

        items = list(groups.values())
        if len(items) == 1:
            send(*items[0])
            return
        pool = self._executor()
        futures = [pool.submit(send, node, indexes) for node, indexes in items[1:]]
        send(*items[0])  # this thread sends one group itself
        for future in futures:
            future.result()  # `send` keeps every error in `results`

    def _moved(self, error: MovedError) -> None:
        """Point the slot at its new owner: redis-py's patch when it has one, else a full refresh."""
        manager = self._r.nodes_manager
        if hasattr(manager, "move_slot"):  # redis-py >= 7
            manager.move_slot(error)
        else:
            manager.initialize()

    def _node_of(self, keys: Sequence[str]) -> ClusterNode:
        if not keys:
            raise ValueError("a script call on a cluster needs at least one key to route it")
        return self._r.nodes_manager.get_node_from_slot(self._r.keyslot(keys[0]))

    def _runner(self, node: ClusterNode) -> ScriptRunner:
        with self._lock:
            runner = self._runners.get(node.name)
            if runner is None:
                client = node.redis_connection or self._r.get_redis_connection(node)
                runner = self._runners[node.name] = ScriptRunner(client)
            return runner

    def _breaker(self, node: ClusterNode) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(node.name)
            if breaker is None:
                breaker = self._breakers[node.name] = CircuitBreaker()
            return breaker

    def _asking(self, error: AskError, call: ScriptCall) -> Any:
        """Send one call to the node importing its slot, after ASKING, on one connection."""
        script, keys, args = call
        node = self._r.nodes_manager.get_node(host=error.host, port=error.port)
        if node is None:
            return error
        client = node.redis_connection or self._r.get_redis_connection(node)
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            return pipe.execute(raise_on_error=True)[1]
        except redis.exceptions.NoScriptError:
            script.sha = client.script_load(script.script)
            return self._asking(error, call)
        except Exception as exc:
            return exc

    def _refresh_if_stale(self) -> None:
        """Re-read the slot map after a node failed, at most once per REFRESH_INTERVAL, in the calling
        thread (others go on with the map they have)."""
        now = time.monotonic()
        if not self._stale or now - self._refreshed_at < REFRESH_INTERVAL:
            return
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            self._refreshed_at = now
            self._stale = False
            self.refreshes += 1
            try:
                self._r.nodes_manager.initialize()
            except (*UNAVAILABLE, redis.exceptions.RedisClusterException):
                self._stale = True  # no node answered: try again later
            # runners of nodes that left the map are dropped; their connections closed
            names = {n.name for n in self._r.get_nodes()}
            with self._lock:
                stale = [self._runners.pop(name) for name in list(self._runners) if name not in names]
        finally:
            self._refreshing.release()
        for runner in stale:
            runner.close()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="artbandit-shard")
            return self._pool
