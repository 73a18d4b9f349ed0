"""How many acknowledged writes does a `kill -9` of redis-server lose, for an `appendfsync` setting?

Writer threads log impressions and click half of them through `RedisJoin` — the same Lua scripts the API
runs, without HTTP in between, so the writes come as fast as one process can send them. Each write the
script acknowledged is remembered with the time of the acknowledgement. At a random moment redis-server
gets SIGKILL (no chance to flush anything); it is restarted on the same directory, and every
acknowledged impression is looked up in the decision stream, every "recorded" click as a reward-1 label in
the labelled stream after a sweep past every deadline (labels wait for the deadline; the clicked state
they carry is what the click wrote).

What is expected (and documented in docs/reliability.md): with `always` nothing acknowledged is lost;
with `everysec` a *process* crash loses nothing either, because Redis writes the AOF buffer to the file
before it answers (a `write()`, which lands in the kernel's page cache), unless a slow background fsync
made it postpone that write, by up to two seconds. What `everysec` really risks is a crash of the host
(power, kernel), which drops the page cache: up to about the last second, which no test here can cause.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.errors import StoreUnavailable
from service.join.redis_join import RedisJoin
from service.join.rule import ClickOutcome
from service.store import keys
from service.store.records import DecisionRecord, StreamEntries, iter_decisions

TITLE = "aof"


@dataclass
class LossTrial:
    appendfsync: str
    acked_impressions: int = 0
    acked_clicks: int = 0
    lost_impressions: int = 0
    lost_clicks: int = 0
    oldest_lost_age: float = 0.0  # seconds between the oldest lost acknowledgement and the kill
    delayed_fsyncs: int = 0  # INFO persistence aof_delayed_fsync before the kill: postponed AOF writes
    acked: dict[str, float] = field(default_factory=dict, repr=False)  # impression id -> ack time
    clicked: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def lost(self) -> int:
        return self.lost_impressions + self.lost_clicks


def _record(n: int, now: float) -> DecisionRecord:
    return DecisionRecord(
        event_id=keys.new_impression_id(TITLE, now),
        title_id=TITLE,
        variant="v",
        user_id=f"u{n}",
        context={"x": (n % 97) / 97},
        artworks=["a", "b"],
        probabilities=[0.5, 0.5],
        chosen="ab"[n % 2],
        propensity=0.5,
        model_version=0,
        policy="uniform",
        decided_at=now,
    )


def _writer(
    url: str, settings: Settings, trial: LossTrial, lock: threading.Lock, stop: threading.Event
) -> None:
    # no retries: a command is sent once, so an acknowledgement means this server wrote it
    r = redis_lib.Redis.from_url(url, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    join = RedisJoin(r, settings)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            record = _record(n, time.time())
            join.impress(record)
            with lock:
                trial.acked[record.event_id] = time.monotonic()
            if n % 2 and join.click(record.event_id) is ClickOutcome.RECORDED:
                with lock:
                    trial.clicked[record.event_id] = time.monotonic()
    except (redis_lib.ConnectionError, redis_lib.TimeoutError, StoreUnavailable):
        pass  # the server is gone: this writer is done
    finally:
        r.close()


def measure_loss(
    directory: Path,
    appendfsync: str,
    run_for: float = 0.6,
    writers: int = 4,
    seed: int = 0,
    appendonly: bool = True,
) -> LossTrial:
    """One trial: write for about `run_for` seconds, kill -9 redis-server, restart it, count the losses.
    `appendonly=False` (no AOF at all) loses everything: the control that shows the count can see a loss."""
    directory.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(appendonly=appendonly, appendfsync=appendfsync, directory=str(directory)).start()
    trial = LossTrial(appendfsync)
    try:
        settings = Settings.load({"redis_url": server.url, "attribution_window": 3600.0}, environ={})
        lock, stop = threading.Lock(), threading.Event()
        threads = [
            threading.Thread(target=_writer, args=(server.url, settings, trial, lock, stop), daemon=True)
            for _ in range(writers)
        ]
        for t in threads:
            t.start()
        time.sleep(run_for * random.Random(seed).uniform(0.7, 1.3))
        probe = redis_lib.Redis.from_url(server.url, socket_timeout=5)
        trial.delayed_fsyncs = int(
            cast(dict[str, int], probe.info("persistence")).get("aof_delayed_fsync", 0)
        )
        probe.close()
        assert server.process is not None
        server.process.kill()  # SIGKILL: no shutdown, no final flush
        killed_at = time.monotonic()
        server.process.wait()
        stop.set()
        for t in threads:
            t.join(10)
        server.stop(cleanup=False)
        server.start(timeout=30.0)  # same port and directory: reloads the AOF
        _count_losses(server.url, settings, trial, killed_at)
    finally:
        server.stop(cleanup=False)
    return trial


def _count_losses(url: str, settings: Settings, trial: LossTrial, killed_at: float) -> None:
    r = redis_lib.Redis.from_url(url, socket_timeout=10)
    try:
        present = {rec.event_id for rec in iter_decisions(r, TITLE)}
        # labels come at the deadline: sweep as if every window had ended, then read the rewards
        RedisJoin(r, settings).expire_all(TITLE, now=time.time() + 2 * settings.attribution_window)
        entries = cast(StreamEntries, r.xrange(keys.labelled_stream(TITLE)))
        clicked = {f[b"id"].decode() for _, f in entries if f[b"r"] == b"1"}
    finally:
        r.close()
    lost = {i: t for i, t in trial.acked.items() if i not in present}
    lost_clicks = {i: t for i, t in trial.clicked.items() if i not in clicked}
    trial.acked_impressions, trial.acked_clicks = len(trial.acked), len(trial.clicked)
    trial.lost_impressions, trial.lost_clicks = len(lost), len(lost_clicks)
    ages = [killed_at - t for t in (*lost.values(), *lost_clicks.values())]
    trial.oldest_lost_age = max(ages, default=0.0)
