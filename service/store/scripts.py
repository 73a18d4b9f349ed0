"""Lua script calls on the request hot path: packed by hiredis, pipelined across a worker's threads.

redis-py's `evalsha` does per-call work (pool locking, retry and observability hooks, argument
filtering) that costs about as much as the rest of an impression, and every call is its own round trip,
which Redis pays for with a read, a write and an AOF write of its own. The two calls every request
makes — `impress.lua` and `click.lua` — go through `ScriptRunner` instead (why, measured:
docs/benchmarks.md, "The request path's Redis client"):

- one `redis.Connection` per runner (per worker process), made by the client's pool
  (`make_connection`), so the URL, password, database, TLS and the API's short socket timeouts are
  exactly the client's;
- calls are combined: a thread that finds the connection idle becomes the *leader*, writes every call
  queued at that moment (its own included) in one `send_packed_command`, reads the replies in order
  and hands each waiting thread its reply. If more calls queued meanwhile, leadership passes to the
  oldest of them, so no thread does more than one batch of others' work. A thread gets its answer only
  after Redis replied to its own command, so nothing is acknowledged that Redis has not executed;
- after a Redis restart a call meets NOSCRIPT: the script is loaded again and the calls that met it are
  sent again (a script that answered NOSCRIPT never ran, so this cannot apply it twice);
- a connection or timeout error fails every call of the batch whose reply was not read, and every call
  queued meanwhile (never sent), so no caller waits more than about one socket timeout for a dead or
  hung Redis; the connection is dropped (a reply may still be in flight on it) and the next call
  reconnects. An error reply of one script (`ResponseError`) fails only that call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis
from redis.commands.core import Script
from redis.connection import Connection

from service.store.clients import UNAVAILABLE

Arg = str | bytes | int | float
ScriptCall = tuple[Script, Sequence[str], Sequence[Arg]]  # (script, keys, args) of one call
WAIT_MARGIN = 1.0  # seconds a queued call waits on top of the socket timeouts before giving up
_UNSET: Any = object()  # no reply yet (a script may reply nil, i.e. None)


class _Call:
    __slots__ = ("script", "keys", "args", "packed", "reply", "error", "lead", "done")

    def __init__(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.packed = _pack(script, keys, args)
        self.reply: Any = _UNSET
        self.error: BaseException | None = None
        self.lead = False  # set when leadership is handed to this call's thread
        self.done = threading.Lock()  # held until the call has its reply, or its thread must lead
        self.done.acquire()


def _pack(script: Script, keys: Sequence[str], args: Sequence[Arg]) -> bytes:
    command: Any = ("EVALSHA", script.sha, len(keys), *keys, *args)  # hiredis' stub types a 1-tuple
    return cast(bytes, hiredis.pack_command(command))


class ScriptRunner:
    """Runs registered `Script`s of one client over one combined connection. Create it in the process
    that uses it (after forking); any number of threads may call `run`."""

    def __init__(self, r: redis.Redis) -> None:
        self._r = r  # a node's client: this runner's connection and script reloads go to that node
        self._lock = threading.Lock()  # guards _queue, _busy and _conn's existence
        self._queue: list[_Call] = []
        self._busy = False  # a leader is writing or reading
        self._conn: Connection | None = None
        kwargs = r.connection_pool.connection_kwargs
        timeouts = [kwargs.get("socket_timeout"), kwargs.get("socket_connect_timeout")]
        self._wait = sum(t for t in timeouts if t) * 2 + WAIT_MARGIN
        self.batches = 0  # round trips made (tests and benchmarks read these two)
        self.calls = 0

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """EVALSHA `script` with `keys` and `args`; the script's reply (bytes responses). Raises what
        redis-py would: ResponseError for an error reply, ConnectionError or TimeoutError."""
        call = self._send([_Call(script, keys, args)])[0]
        if call.error is not None:
            raise call.error
        return call.reply

    def run_many(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Several script calls in one round trip (they travel in the same batch). Each result is the
        script's reply or the exception that call met (returned, not raised), in the order given."""
        if not calls:
            return []
        done = self._send([_Call(*c) for c in calls])
        return [c.error if c.error is not None else c.reply for c in done]

    def _send(self, calls: list[_Call]) -> list[_Call]:
        """Queue `calls` together (one batch takes the whole queue, so they are never split) and wait
        for their replies, leading the batch if the connection is idle."""
        with self._lock:
            self._queue.extend(calls)
            lead = not self._busy
            if lead:
                self._busy = True
        if not lead:
            self._await(calls)
            lead = calls[0].lead
        if lead:
            self._lead()
        for call in calls[1:]:  # released with the first; take each lock so every reply is visible
            if not call.done.acquire(timeout=self._wait) and call.error is None and call.reply is _UNSET:
                call.error = redis.TimeoutError("no reply from Redis in time")
        return calls

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()

    # ------------------------------------------------------------------------------ internals
    def _await(self, calls: list[_Call]) -> None:
        """Wait until the calls have their replies or this thread is to lead the next batch (only the
        first of a group can be chosen: the group sits in the queue together)."""
        first = calls[0]
        if first.done.acquire(timeout=self._wait):
            return
        with self._lock:
            if not first.lead and first in self._queue:  # never sent and not chosen to lead: give up
                for call in calls:
                    self._queue.remove(call)
                raise redis.TimeoutError("Redis did not take the call in time")
        # in flight (the leader's socket timeouts bound the wait), or leadership is on its way
        if not first.done.acquire(timeout=self._wait):
            raise redis.TimeoutError("no reply from Redis in time")

    def _lead(self) -> None:
        """Send one batch: everything queued now (the leader's own call included). Then hand
        leadership to the oldest call queued meanwhile, or go idle."""
        with self._lock:
            batch, self._queue = self._queue, []
            if self._conn is None:
                self._conn = cast(Connection, self._r.connection_pool.make_connection())
            conn = self._conn
        try:
            self._roundtrip(conn, batch)
        except Exception as exc:  # e.g. reloading a script failed: whoever has no reply gets the error
            for call in batch:
                if call.reply is _UNSET and call.error is None:
                    call.error = exc
        finally:
            for call in batch:  # every call's lock is held: by creation, or re-taken in _await
                call.done.release()
            down = next((c.error for c in batch if isinstance(c.error, UNAVAILABLE)), None)
            with self._lock:
                if down is not None:
                    # Redis just failed this batch: the calls queued meanwhile would wait for the same
                    # timeout again; fail them now (never sent) so every caller falls back within one
                    # socket timeout, and go idle. The next call reconnects.
                    stranded, self._queue = self._queue, []
                    for call in stranded:
                        call.error = down
                        call.done.release()
                    self._busy = False
                elif self._queue:
                    successor = self._queue[0]
                    successor.lead = True  # under the lock: its _await cannot give up on it now
                    successor.done.release()
                else:
                    self._busy = False

    def _roundtrip(self, conn: Connection, batch: list[_Call]) -> None:
        self.batches += 1
        self.calls += len(batch)
        pending = batch
        for _attempt in range(2):
            retry: list[_Call] = []
            read = 0
            try:
                # one buffer, one sendall: redis-py sends a list item by item (a syscall each)
                conn.send_packed_command([b"".join([c.packed for c in pending])], check_health=False)
                for call in pending:
                    try:
                        call.reply = conn.read_response()
                    except redis.exceptions.NoScriptError:
                        retry.append(call)
                    except redis.ResponseError as exc:
                        call.error = exc
                    read += 1
            except Exception as exc:
                conn.disconnect()
                for call in pending[read:]:
                    call.error = exc
                return
            if not retry:
                return
            for script in {id(c.script): c.script for c in retry}.values():
                script.sha = self._r.script_load(script.script)
            for call in retry:
                call.packed = _pack(call.script, call.keys, call.args)
            pending = retry
        for call in pending:
            call.error = redis.exceptions.NoScriptError("script missing again after reloading it")
