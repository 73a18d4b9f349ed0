"""The Lua join and `service.join.rule.MemoryJoin` are one rule: random interleavings of impressions (shown or
deferred, clicks or graded rewards under each aggregate), activations, clicks, rewards (with and without
event ids, repeated), unknown ids and sweeps give identical outcomes, labels, counters and pending sets."""

from __future__ import annotations

import json
from typing import Any, cast

import redis as redis_lib
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from service.catalog import RewardSpec
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.join.rule import Labelled, MemoryJoin
from service.store import keys
from service.store.records import DecisionRecord, StreamEntries

WINDOW = 10.0
T0 = 1_700_000_000.0
TITLE = "t1"
# An event's time is (decided_at + base) + offset: base 2.5 is also an activation time, so the offsets
# hit an activated impression's deadline exactly, as base 0 hits a shown one's. The offsets sit on the
# boundaries: at the deadline, just after it, far after it.
BASES = [0.0, 2.5]
OFFSETS = [0.0, 0.1, 2.5, WINDOW - 0.1, WINDOW, WINDOW + 0.1, 2 * WINDOW]
SWEEP_OFFSETS = [0.0, 0.7, WINDOW, WINDOW + 0.1, 3 * WINDOW]
RULES: list[RewardSpec | None] = [
    None,  # clicks: first, [0, 1]
    RewardSpec(aggregate="first", min=0.0, max=10.0),
    RewardSpec(aggregate="sum", min=0.0, max=5.0),
    RewardSpec(aggregate="sum", min=-1.0, max=3.0),
    RewardSpec(aggregate="max", min=1.0, max=5.0),
    RewardSpec(aggregate="max", min=0.0, max=10.0),
]
VALUES = [-2.0, 0.0, 0.25, 1.0, 2.5, 4.0, 7.0, 12.0]
EVENTS = [None, "e1", "e2", "click"]  # "click" is the event id of a click: a reward can collide with it

times = st.tuples(st.sampled_from(BASES), st.sampled_from(OFFSETS))
latest = st.integers(0, 7)  # one of the 8 latest impressions (an op on a later one would rarely meet another)
unknown = st.just(-1)  # an id never logged
impress = st.tuples(
    st.just("impress"), st.sampled_from([0.0, 0.1, 0.7, 3.0]), st.booleans(), st.integers(0, len(RULES) - 1)
)


def click(index: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(st.just("click"), index, times)


def reward(index: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(st.just("reward"), index, times, st.sampled_from(VALUES), st.sampled_from(EVENTS))


ops = st.tuples(
    impress,  # the first op: every later one finds an impression to act on
    st.lists(
        st.one_of(
            impress,
            impress,  # twice as likely as one of the others
            st.tuples(st.just("activate"), st.lists(st.integers(-1, 7), min_size=1, max_size=3), times),
            click(latest),
            reward(latest),
            reward(latest),
            click(unknown),
            reward(unknown),
            st.tuples(st.just("sweep"), st.sampled_from(SWEEP_OFFSETS)),
            st.tuples(st.just("sweep_at"), latest, times),  # at an impression's boundaries
        ),
        max_size=60,
    ),
).map(lambda first_and_rest: [first_and_rest[0], *first_and_rest[1]])

LabelRow = tuple[str, float, float, str]


def make_record(decided_at: float, n: int, deferred: bool) -> DecisionRecord:
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
        deferred=deferred,
    )


class Labels:
    """Reads the labelled events the Redis join emitted since the last call."""

    def __init__(self, r: redis_lib.Redis) -> None:
        self.r = r
        self.last = "0-0"

    def new(self) -> set[LabelRow]:
        out = set()
        entries = cast(StreamEntries, self.r.xrange(keys.labelled_stream(TITLE), min=f"({self.last}"))
        for entry_id, f in entries:
            self.last = entry_id.decode()
            ev = json.loads(f[b"ev"])
            out.add((f[b"id"].decode(), float(f[b"r"]), float(f[b"at"]), json.dumps(ev, sort_keys=True)))
        return out


def memory_labels(labelled: list[Labelled | None]) -> set[LabelRow]:
    return {
        (x.impression_id, x.reward, x.labelled_at, json.dumps(x.record, sort_keys=True))
        for x in labelled
        if x is not None
    }


def redis_counts(r: redis_lib.Redis) -> dict[str, int]:
    """The title's join counters (an unknown id on a title without impressions is counted globally)."""
    counts = {k.decode(): int(v) for k, v in r.hgetall(keys.join_counters(TITLE)).items()}  # type: ignore[union-attr]
    unknown = counts.get("unknown", 0) + int(r.get(keys.unknown_clicks()) or 0)
    if unknown:
        counts["unknown"] = unknown
    return counts


@settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=ops)
def test_redis_join_matches_memory_join(redis_server: PrivateRedis, ops: list[tuple[Any, ...]]) -> None:
    note(f"ops = {ops!r}")  # pytest 9.2 with hypothesis 6.170 prints the failing example's arguments blank
    r = redis_lib.Redis.from_url(redis_server.url)
    r.flushall()
    join = RedisJoin(
        r, Settings.load({"redis_url": redis_server.url, "attribution_window": WINDOW}, environ={})
    )
    memory = MemoryJoin(WINDOW, retention=1e9)  # Redis keeps finished impressions far longer than a test runs
    labels = Labels(r)
    now = T0
    impressions: list[DecisionRecord] = []
    deferred: set[str] = set()
    labelled_ids: list[str] = []

    def target(index: int, when: tuple[float, float]) -> tuple[str, float]:
        """(impression id, time) of an op on the `index`-th latest impression (-1: an id never logged)."""
        base, offset = when
        if index < 0:
            return f"{TITLE}~{int(now // 60)}~{'0' * 16}", (now + base) + offset
        rec = impressions[-1 - index % len(impressions)]
        return rec.event_id, (rec.decided_at + base) + offset

    try:
        for op in ops:
            expected: set[LabelRow] = set()
            if op[0] == "impress":
                _, dt, defer, rule = op
                now += dt
                rec = make_record(now, len(impressions), defer)
                impressions.append(rec)
                if defer:
                    deferred.add(rec.event_id)
                join.impress(rec, defer=defer, reward=RULES[rule])
                memory.impress(
                    rec.event_id, now, json.loads(rec.label_json()), defer=defer, reward=RULES[rule]
                )
            elif op[0] == "activate":
                at = target(op[1][0], op[2])[1]
                ids = [target(i, op[2])[0] for i in op[1]]
                assert join.activate(ids, now=at) == memory.activate(ids, at)
            elif op[0] == "click":
                impression_id, at = target(op[1], op[2])
                outcome, label = memory.click(impression_id, at)
                assert join.click(impression_id, now=at) == outcome
                expected = memory_labels([label])
            elif op[0] == "reward":
                impression_id, at = target(op[1], op[2])
                outcome, label = memory.reward(impression_id, op[3], op[4], at)
                assert join.reward(impression_id, op[3], op[4], now=at) == outcome
                expected = memory_labels([label])
            else:
                at = now + op[1] if op[0] == "sweep" else target(op[1], op[2])[1]
                expected = memory_labels(list(memory.expire(at)))
                assert join.expire_all(TITLE, now=at, limit=3) == len(expected)
            got = labels.new()
            assert got == expected
            labelled_ids += [x[0] for x in got]
            assert redis_counts(r) == {k: v for k, v in memory.counts.items() if v}
            assert r.zcard(keys.pending(TITLE)) == memory.pending

        # in the end every shown impression is labelled exactly once, and no deferred one never shown
        final = now + 10 * WINDOW
        expected = memory_labels(list(memory.expire(final)))
        assert join.expire_all(TITLE, now=final) == len(expected)
        got = labels.new()
        assert got == expected
        labelled_ids += [x[0] for x in got]
        assert redis_counts(r) == {k: v for k, v in memory.counts.items() if v}
        assert len(labelled_ids) == len(set(labelled_ids)) == memory.counts["impressions"]
        assert {rec.event_id for rec in impressions} - deferred <= set(labelled_ids)
        assert memory.counts["never_shown"] == memory.counts["deferred"] - memory.counts["activated"]
        assert memory.pending == 0
    finally:
        r.close()
