"""The Lua join and `service.join.rule.MemoryJoin` are one rule: random interleavings of impressions, clicks,
duplicate clicks, late clicks and sweeps give identical outcomes, labels and counts."""

from __future__ import annotations

import json
from typing import Any, cast

import redis as redis_lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.join.rule import MemoryJoin
from service.store import keys
from service.store.records import DecisionRecord, StreamEntries

WINDOW = 10.0
T0 = 1_700_000_000.0
TITLE = "t1"
# offsets chosen to hit the boundaries: at the deadline, just after it, far after it
CLICK_OFFSETS = [0.0, 0.1, 2.5, WINDOW - 0.1, WINDOW, WINDOW + 0.1, 2 * WINDOW]
SWEEP_OFFSETS = [0.0, 0.7, WINDOW, WINDOW + 0.1, 3 * WINDOW]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("impress"), st.sampled_from([0.0, 0.1, 0.7, 3.0])),
        st.tuples(st.just("click"), st.integers(0, 40), st.sampled_from(CLICK_OFFSETS)),
        st.tuples(st.just("unknown"), st.sampled_from(CLICK_OFFSETS)),
        st.tuples(st.just("sweep"), st.sampled_from(SWEEP_OFFSETS)),
    ),
    max_size=40,
)


def make_record(decided_at: float, n: int) -> DecisionRecord:
    return DecisionRecord(
        event_id=keys.new_impression_id(TITLE, decided_at),
        title_id=TITLE,
        variant="v",
        user_id=f"u{n}",
        context={"x": n / 7},
        artworks=["a", "b"],
        probabilities=[0.5, 0.5],
        chosen="ab"[n % 2],
        propensity=0.5,
        model_version=n,
        policy="uniform",
        decided_at=decided_at,
    )


class Labels:
    """Reads the labelled events the Redis join emitted since the last call."""

    def __init__(self, r: redis_lib.Redis) -> None:
        self.r = r
        self.last = "0-0"

    def new(self) -> set[tuple[str, float, float, str]]:
        out = set()
        entries = cast(StreamEntries, self.r.xrange(keys.labelled_stream(TITLE), min=f"({self.last}"))
        for entry_id, f in entries:
            self.last = entry_id.decode()
            ev = json.loads(f[b"ev"])
            out.add((f[b"id"].decode(), float(f[b"r"]), float(f[b"at"]), json.dumps(ev, sort_keys=True)))
        return out


def memory_labels(labelled: list[Any]) -> set[tuple[str, float, float, str]]:
    return {
        (x.impression_id, x.reward, x.labelled_at, json.dumps(x.record, sort_keys=True)) for x in labelled
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops)
def test_redis_join_matches_memory_join(redis_server: PrivateRedis, ops: list[tuple[Any, ...]]) -> None:
    r = redis_lib.Redis.from_url(redis_server.url)
    r.flushall()
    join = RedisJoin(
        r, Settings.load({"redis_url": redis_server.url, "attribution_window": WINDOW}, environ={})
    )
    memory = MemoryJoin(WINDOW, retention=1e9)  # Redis keeps finished impressions far longer than a test runs
    labels = Labels(r)
    now = T0
    impressions: list[DecisionRecord] = []
    labelled_ids: list[str] = []
    try:
        for op in ops:
            if op[0] == "impress":
                now += op[1]
                rec = make_record(now, len(impressions))
                impressions.append(rec)
                join.impress(rec)
                memory.impress(rec.event_id, now, json.loads(rec.label_json()))
                expected: set[tuple[str, float, float, str]] = set()
            elif op[0] in ("click", "unknown"):
                if op[0] == "click" and impressions:
                    rec = impressions[op[1] % len(impressions)]
                    impression_id, at = rec.event_id, rec.decided_at + op[2]
                else:
                    impression_id, at = f"{TITLE}~{int(now // 60)}~{'0' * 16}", now + op[-1]
                outcome, label = memory.click(impression_id, at)
                assert join.click(impression_id, now=at) == outcome
                expected = memory_labels([label] if label else [])
            else:
                at = now + op[1]
                expected = memory_labels(memory.expire(at))
                assert join.expire_all(TITLE, now=at, limit=3) == len(expected)
            got = labels.new()
            assert got == expected
            labelled_ids += [x[0] for x in got]

        # counts agree (an unknown click on a title without impressions is counted globally)
        counts = {k.decode(): int(v) for k, v in r.hgetall(keys.join_counters(TITLE)).items()}  # type: ignore[union-attr]
        counts["unknown"] = counts.get("unknown", 0) + int(r.get(keys.unknown_clicks()) or 0)
        for name, value in memory.counts.items():
            assert counts.get(name, 0) == value, name
        assert r.zcard(keys.pending(TITLE)) == memory.pending

        # in the end every impression is labelled exactly once
        final = now + 10 * WINDOW
        assert join.expire_all(TITLE, now=final) == len(memory.expire(final))
        labelled_ids += [x[0] for x in labels.new()]
        assert sorted(labelled_ids) == sorted(rec.event_id for rec in impressions)
    finally:
        r.close()
