"""Compare what clients were told with what Redis holds, for one title's traffic.

The promises checked (every key is read through `service.store.keys`, every decision through
`service.store.records.iter_decisions`):

- an impression answered 200 with an impression id is in the decision stream exactly once, and ends
  exactly one way: labelled once (reward 1 if clicked in its window, else 0) or still pending, never
  both, never neither;
- labels come at the deadline, clicks included (service/join/rule.py): once every deadline has passed, a
  click answered `200 {"status": "recorded"}` is a reward-1 label of its impression, exactly once; no
  impression is answered "recorded" twice; a click answered "duplicate" is on a clicked impression and
  one answered 410 (late) on a defaulted one;
- a reward-1 label nobody was told about comes only from a click whose answer was lost (no answer or
  a 5xx): the client could not know, retried, and was told "duplicate" (or gave up);
- the join counters agree with the streams, and the learner's snapshot has applied exactly the labelled
  events up to its stored position.

Decisions logged without the client learning their id ("orphans": the answer was lost, or the write
succeeded but the worker's short Redis timeout fired first and it served the fallback) are counted, not
failures: they are labelled like any other impression, only never clicked.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import cast

import redis as redis_lib

from service.store import keys
from service.store.records import StreamEntries, iter_decisions, parse_labelled
from tests.faults.load import Answer

MAX_LISTED = 5  # ids quoted per problem


@dataclass(frozen=True)
class StoreView:
    """One title's join state as Redis holds it."""

    decisions: Counter[str]  # impression id -> entries in the decision stream
    labels: dict[str, list[float]]  # impression id -> rewards of its labelled events, in stream order
    label_ids: list[str]  # stream entry ids of the labelled stream, in order
    pending: set[str]
    counters: dict[str, int]
    snapshot: dict[str, str]

    @classmethod
    def read(cls, r: redis_lib.Redis, title_id: str) -> StoreView:
        decisions = Counter(rec.event_id for rec in iter_decisions(r, title_id))
        entries = cast(StreamEntries, r.xrange(keys.labelled_stream(title_id)))
        labels: dict[str, list[float]] = defaultdict(list)
        for _, fields in entries:
            event = parse_labelled(title_id, fields)
            labels[event.impression_id].append(event.reward)
        pending = {m.decode() for m in cast(list[bytes], r.zrange(keys.pending(title_id), 0, -1))}
        raw = cast(dict[bytes, bytes], r.hgetall(keys.join_counters(title_id)))
        snapshot = cast(dict[bytes, bytes], r.hgetall(keys.snapshot(title_id)))
        return cls(
            decisions=decisions,
            labels=dict(labels),
            label_ids=[entry_id.decode() for entry_id, _ in entries],
            pending=pending,
            counters={k.decode(): int(v) for k, v in raw.items()},
            snapshot={k.decode(): v.decode() for k, v in snapshot.items() if not k.startswith(b"bytes|")},
        )

    def rewards(self, reward: float) -> set[str]:
        return {i for i, rs in self.labels.items() if reward in rs}


@dataclass
class Reconciliation:
    """The numbers of one reconciliation and the broken promises (`problems`, empty when all hold)."""

    numbers: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, what: str, ids: set[str] | list[str]) -> None:
        if ids:
            listed = sorted(ids)[:MAX_LISTED]
            self.problems.append(f"{what}: {len(ids)} (e.g. {listed})")

    @property
    def lost(self) -> int:
        return self.numbers.get("lost impressions", 0) + self.numbers.get("lost clicks", 0)

    @property
    def doubled(self) -> int:
        return (
            self.numbers.get("doubled decisions", 0)
            + self.numbers.get("doubled labels", 0)
            + self.numbers.get("recorded twice", 0)
        )


def reconcile(answers: list[Answer], store: StoreView, *, settled: bool) -> Reconciliation:
    """Check the promises for one title. `settled`: the load is over, every deadline has passed and the
    learner has caught up, so nothing may still be pending and the snapshot must cover the whole stream."""
    out = Reconciliation()
    logged = {a.impression_id for a in answers if a.logged and a.impression_id is not None}
    clicks: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        if a.kind == "click" and a.impression_id is not None:
            clicks[a.impression_id].append(a)
    recorded = Counter(i for i, xs in clicks.items() for a in xs if a.recorded)
    duplicate = {i for i, xs in clicks.items() if any(a.status == 200 and not a.recorded for a in xs)}
    late = {i for i, xs in clicks.items() if any(a.status == 410 for a in xs)}
    uncertain = {i for i, xs in clicks.items() if any(a.uncertain for a in xs)}
    labelled = set(store.labels)
    clicked, defaulted = store.rewards(1.0), store.rewards(0.0)

    # impressions
    out.problem(
        "lost impressions (answered with an id, not in the decision stream)", logged - set(store.decisions)
    )
    out.problem("doubled decisions", {i for i, n in store.decisions.items() if n > 1})
    out.problem("impressions neither labelled nor pending", set(store.decisions) - labelled - store.pending)
    out.problem("impressions labelled and still pending", labelled & store.pending)
    out.problem("labels of impressions never logged", labelled - set(store.decisions))
    out.problem("doubled labels", {i for i, rs in store.labels.items() if len(rs) > 1})
    if settled:
        out.problem("still pending after every deadline passed", store.pending)
    # clicks
    unlabelled_clicks = set(recorded) - clicked - (set() if settled else store.pending)
    out.problem("lost clicks (answered recorded, no reward-1 label)", unlabelled_clicks)
    out.problem("recorded twice", {i for i, n in recorded.items() if n > 1})
    out.problem(
        "reward-1 labels no client was told of or could have caused", clicked - set(recorded) - uncertain
    )
    out.problem(
        "answered duplicate, but not clicked", duplicate - clicked - (set() if settled else store.pending)
    )
    out.problem("answered late, but not defaulted", late - defaulted)
    out.problem("server errors (500)", {f"{a.kind}#{a.n}" for a in answers if a.status == 500})
    # counters
    c = store.counters
    expected = {
        "impressions": sum(store.decisions.values()),
        "defaulted": len(defaulted),
        "labelled": len(store.label_ids),
    }
    if settled:  # the clicked counter moves at the click, its label at the deadline
        expected["clicked"] = len(clicked)
    for name, value in expected.items():
        if c.get(name, 0) != value:
            out.problems.append(f"join counter {name} is {c.get(name, 0)}, the streams say {value}")
    # the learner
    pos = store.snapshot.get("pos", "")
    covered = sum(1 for entry_id in store.label_ids if _id_le(entry_id, pos)) if pos else 0
    consumed, applied = int(store.snapshot.get("consumed", 0)), int(store.snapshot.get("applied", 0))
    if consumed != covered or applied != consumed:
        out.problems.append(
            f"learner snapshot at {pos!r}: consumed {consumed}, applied {applied}, "
            f"stream entries up to it {covered}"
        )
    if settled and covered != len(store.label_ids):
        out.problems.append(
            f"learner covers {covered} of {len(store.label_ids)} labelled events after settling"
        )

    out.numbers = {
        "requests": len(answers),
        "impressions logged": len(logged),
        "impressions fallback": sum(
            1 for a in answers if a.kind == "impression" and a.status == 200 and not a.logged
        ),
        "impressions unanswered": sum(1 for a in answers if a.kind == "impression" and a.uncertain),
        "clicks sent": sum(len(xs) for xs in clicks.values()),
        "clicks recorded": len(recorded),
        "clicks duplicate": len(duplicate),
        "clicks late": len(late),
        "clicks retried": sum(1 for xs in clicks.values() for a in xs if a.attempt > 1),
        "clicks unanswered or 5xx": sum(1 for xs in clicks.values() for a in xs if a.uncertain),
        "clicks given up": sum(
            1
            for xs in clicks.values()
            for a in xs
            if a.uncertain and not any(b.attempt == a.attempt + 1 for b in xs)
        ),
        "decisions": sum(store.decisions.values()),
        "orphan decisions": len(set(store.decisions) - logged),
        "labelled clicked": len(clicked),
        "labelled defaulted": len(defaulted),
        "pending": len(store.pending),
        "learner applied": applied,
        "lost impressions": len(logged - set(store.decisions)),
        "lost clicks": len(unlabelled_clicks),
        "doubled decisions": sum(1 for n in store.decisions.values() if n > 1),
        "doubled labels": sum(1 for rs in store.labels.values() if len(rs) > 1),
        "recorded twice": sum(1 for n in recorded.values() if n > 1),
        "server errors": sum(1 for a in answers if a.status == 500),
    }
    return out


def _id_le(a: str, b: str) -> bool:
    """Stream id a <= stream id b ("ms-seq")."""
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) <= (int(bms), int(bseq or 0))


def wait_settled(r: redis_lib.Redis, title_id: str, timeout: float) -> StoreView:
    """Poll until nothing of the title is pending and the learner's snapshot covers its whole labelled
    stream; returns the settled view. Raises TimeoutError with the last view's numbers."""
    deadline = time.monotonic() + timeout
    while True:
        pending = int(r.zcard(keys.pending(title_id)))
        length = int(r.xlen(keys.labelled_stream(title_id)))
        consumed = int(cast(bytes, r.hget(keys.snapshot(title_id), "consumed")) or 0)
        if pending == 0 and consumed >= length:
            return StoreView.read(r, title_id)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{title_id}: {pending} pending, learner consumed {consumed} of {length} labelled events"
            )
        time.sleep(0.1)
