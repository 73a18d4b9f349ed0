"""ScriptRunner: the request path's combined script calls, against a real Redis.

What must hold whatever the interleaving: every call gets its own reply (never a neighbour's), each
script runs exactly once per call, an error reply fails only its own call, calls queued while a batch
is in flight go out together in the next batch, NOSCRIPT after a restart is healed without running
anything twice, and a dead Redis fails the calls (ConnectionError) until it is back.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest
import redis as redis_lib

from service.devstack.redis_server import PrivateRedis
from service.store.scripts import ScriptRunner

# counts every run in KEYS[1]; replies ARGV[1], or an error reply when ARGV[1] is 'bad'
ECHO = """
redis.call('INCR', KEYS[1])
if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end
return ARGV[1]
"""


def test_many_threads_each_get_their_own_reply_and_each_call_runs_once(redis: redis_lib.Redis) -> None:
    script = redis.register_script(ECHO)
    runner = ScriptRunner(redis)
    errors: list[str] = []
    threads, per_thread = 8, 400

    def work(t: int) -> None:
        for i in range(per_thread):
            arg = "bad" if i % 50 == 7 else f"{t}:{i}"
            try:
                reply = runner.run(script, ["runs"], [arg])
                if reply != arg.encode():
                    errors.append(f"{arg} got {reply!r}")
            except redis_lib.ResponseError as exc:
                if arg != "bad" or "bad argument" not in str(exc):
                    errors.append(f"{arg} raised {exc!r}")

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    assert int(redis.get("runs") or 0) == threads * per_thread
    assert runner.calls == threads * per_thread
    assert runner.batches <= runner.calls


def test_calls_queued_during_a_batch_go_out_together_in_the_next(
    redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = redis.register_script(ECHO)
    runner = ScriptRunner(redis)
    first_batch_sent = threading.Event()
    let_it_finish = threading.Event()
    batch_sizes: list[int] = []
    real = ScriptRunner._roundtrip

    def slow_first(self: ScriptRunner, conn: Any, batch: list[Any]) -> None:
        batch_sizes.append(len(batch))
        if len(batch_sizes) == 1:
            first_batch_sent.set()
            assert let_it_finish.wait(10)
        real(self, conn, batch)

    monkeypatch.setattr(ScriptRunner, "_roundtrip", slow_first)
    replies: dict[str, Any] = {}

    def call(arg: str) -> None:
        replies[arg] = runner.run(script, ["runs"], [arg])

    leader = threading.Thread(target=call, args=("leader",))
    leader.start()
    assert first_batch_sent.wait(10)
    followers = [threading.Thread(target=call, args=(f"f{i}",)) for i in range(5)]
    for th in followers:
        th.start()
    deadline = time.monotonic() + 10
    while len(runner._queue) < 5 and time.monotonic() < deadline:  # all five are waiting in the queue
        time.sleep(0.005)
    let_it_finish.set()
    for th in [leader, *followers]:
        th.join(10)
    assert batch_sizes == [1, 5]
    assert replies == {a: a.encode() for a in ["leader", "f0", "f1", "f2", "f3", "f4"]}
    assert int(redis.get("runs") or 0) == 6


def test_an_error_reply_fails_only_its_own_call_in_a_batch(redis: redis_lib.Redis) -> None:
    script = redis.register_script(ECHO)
    runner = ScriptRunner(redis)
    conn = redis.connection_pool.make_connection()
    from service.store.scripts import _Call

    batch = [_Call(script, ["runs"], [a]) for a in ("a", "bad", "c")]
    runner._roundtrip(conn, batch)  # type: ignore[arg-type]
    conn.disconnect()
    assert [c.reply for c in batch[::2]] == [b"a", b"c"]
    assert isinstance(batch[1].error, redis_lib.ResponseError)
    assert int(redis.get("runs") or 0) == 3


def test_noscript_after_a_script_flush_is_healed_and_runs_once(redis: redis_lib.Redis) -> None:
    script = redis.register_script(ECHO)
    runner = ScriptRunner(redis)
    assert runner.run(script, ["runs"], ["one"]) == b"one"
    redis.script_flush()  # what a Redis restart without persistence of scripts looks like
    assert runner.run(script, ["runs"], ["two"]) == b"two"
    assert int(redis.get("runs") or 0) == 2


def test_dead_redis_fails_calls_then_they_work_again_after_a_restart() -> None:
    server = PrivateRedis(appendonly=False).start()
    try:
        client = redis_lib.Redis.from_url(server.url, socket_timeout=0.2, socket_connect_timeout=0.2)
        script = client.register_script(ECHO)
        runner = ScriptRunner(client)
        assert runner.run(script, ["runs"], ["up"]) == b"up"
        server.stop(cleanup=False)
        for _ in range(3):
            with pytest.raises((redis_lib.ConnectionError, redis_lib.TimeoutError)):
                runner.run(script, ["runs"], ["down"])
        server.start()
        assert runner.run(script, ["runs"], ["back"]) == b"back"  # script cache was lost: NOSCRIPT healed
        runner.close()
    finally:
        server.stop()


def test_a_hung_redis_fails_every_concurrent_call_within_about_one_timeout() -> None:
    """SIGSTOP: connections are accepted by the kernel but nothing answers. Calls queued behind the
    batch that times out must not wait for a second timeout of their own (the API promises a fallback
    answer within 100 ms with a 50 ms Redis timeout)."""
    server = PrivateRedis(appendonly=False).start()
    assert server.process is not None
    try:
        client = redis_lib.Redis.from_url(server.url, socket_timeout=0.05, socket_connect_timeout=0.05)
        script = client.register_script(ECHO)
        runner = ScriptRunner(client)
        assert runner.run(script, ["runs"], ["up"]) == b"up"
        server.process.send_signal(signal.SIGSTOP)
        waits: list[float] = []
        failures: list[BaseException] = []

        def call() -> None:
            started = time.monotonic()
            try:
                runner.run(script, ["runs"], ["hung"])
            except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
                failures.append(exc)
            waits.append(time.monotonic() - started)

        pool = [threading.Thread(target=call) for _ in range(8)]
        for th in pool:
            th.start()
        for th in pool:
            th.join(10)
        assert len(failures) == 8
        assert max(waits) < 0.095, sorted(waits)  # one 50 ms timeout plus scheduling, never two
    finally:
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        server.stop()
