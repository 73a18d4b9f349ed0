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

Deferred decisions (pages with `defer`): an id answered `activated` (exactly once across all answers)
or `already_active`, or clicked "recorded", is shown: labelled once; an id nobody tried to activate, click
or reward is never shown: never labelled, counted `never_shown`. With graded rewards (`graded=True`, a
`sum` title), each label lies between the sum of the rewards clients were told were recorded (one per
event id; a click is 1) and that sum plus the rewards whose answer was lost.

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
from tests.faults.load import Answer, reward_value

MAX_LISTED = 5  # ids quoted per problem


@dataclass(frozen=True)
class StoreView:
    """One title's join state as Redis holds it."""

    decisions: Counter[str]  # impression id -> entries in the decision stream
    deferred: set[str]  # ids decided with defer
    labels: dict[str, list[float]]  # impression id -> rewards of its labelled events, in stream order
    label_ids: list[str]  # stream entry ids of the labelled stream, in order
    pending: set[str]
    counters: dict[str, int]
    snapshot: dict[str, str]

    @classmethod
    def read(cls, r: redis_lib.Redis, title_id: str) -> StoreView:
        records = list(iter_decisions(r, title_id))
        decisions = Counter(rec.event_id for rec in records)
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
            deferred={rec.event_id for rec in records if rec.deferred},
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


def reconcile(
    answers: list[Answer], store: StoreView, *, settled: bool, graded: bool = False
) -> Reconciliation:
    """Check the promises for one title. `settled`: the load is over, every deadline has passed and the
    learner has caught up, so nothing may still be pending and the snapshot must cover the whole stream.
    `graded`: the title sums graded rewards (labels are sums, not 0/1). Answers of other titles (a page's)
    are left out by their impression ids."""
    out = Reconciliation()
    title = next((i.split("~", 1)[0] for i in store.decisions), None)
    answers = [a for a in answers if _of_title(a, title)]
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
    if graded:
        clicked = {i for i, rs in store.labels.items() if any(r > 0 for r in rs)}
    # deferred impressions: who was shown, who never was
    activations: dict[str, list[Answer]] = defaultdict(list)
    rewards: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        if a.kind == "activate" and a.impression_id is not None:
            activations[a.impression_id].append(a)
        elif a.kind == "reward" and a.impression_id is not None:
            rewards[a.impression_id].append(a)
    activated = Counter(
        i for i, xs in activations.items() for a in xs if a.status == 200 and _result(a, i) == "activated"
    )
    shown = (
        {i for i, xs in activations.items() for a in xs if a.status == 200 and _result(a, i) in ACTIVE}
        | set(recorded)
        | {i for i, xs in rewards.items() if any(_status(a) == "recorded" for a in xs)}
    )
    touched = set(activations) | set(clicks) | set(rewards)  # anything that might activate it
    never_shown = store.deferred - labelled - store.pending
    out.problem(
        "activated twice (answered activated more than once)", {i for i, n in activated.items() if n > 1}
    )
    if settled:
        out.problem(
            "shown (activated, clicked or rewarded) but never labelled", (shown & store.deferred) - labelled
        )
    out.problem(
        "deferred, never activated, clicked or rewarded, yet labelled", (store.deferred - touched) & labelled
    )
    # impressions
    out.problem(
        "lost impressions (answered with an id, not in the decision stream)", logged - set(store.decisions)
    )
    out.problem("doubled decisions", {i for i, n in store.decisions.items() if n > 1})
    out.problem(
        "impressions neither labelled nor pending (nor never shown)",
        set(store.decisions) - labelled - store.pending - never_shown,
    )
    out.problem("impressions labelled and still pending", labelled & store.pending)
    out.problem("labels of impressions never logged", labelled - set(store.decisions))
    out.problem("doubled labels", {i for i, rs in store.labels.items() if len(rs) > 1})
    if settled:
        out.problem("still pending after every deadline passed", store.pending)
    # clicks
    unlabelled_clicks = set(recorded) - clicked - (set() if settled else store.pending)
    out.problem("lost clicks (answered recorded, no reward-1 label)", unlabelled_clicks)
    out.problem("recorded twice", {i for i, n in recorded.items() if n > 1})
    if graded:
        out.problems.extend(_graded_problems(store, clicks, rewards, settled))
    else:
        out.problem(
            "reward-1 labels no client was told of or could have caused", clicked - set(recorded) - uncertain
        )
        out.problem(
            "answered duplicate, but not clicked", duplicate - clicked - (set() if settled else store.pending)
        )
        out.problem("answered late, but not defaulted", late - defaulted - never_shown)
    out.problem("server errors (500)", {f"{a.kind}#{a.n}" for a in answers if a.status == 500})
    # counters
    c = store.counters
    shown_deferred = store.deferred - never_shown
    expected = {
        "impressions": sum(store.decisions.values()) - len(store.deferred) + c.get("activated", 0),
        "defaulted": len(defaulted),
        "labelled": len(store.label_ids),
    }
    if settled:
        expected.update(activated=len(shown_deferred), never_shown=len(never_shown))
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
        "impressions unanswered": sum(1 for a in answers if a.kind in ("impression", "page") and a.uncertain),
        "clicks sent": sum(len(xs) for xs in clicks.values()),
        "clicks recorded": len(recorded),
        "clicks duplicate": len(duplicate),
        "clicks late": len(late),
        "clicks retried": sum(1 for xs in clicks.values() for a in xs if a.attempt > 1),
        "clicks unanswered or 5xx": sum(1 for xs in clicks.values() for a in xs if a.uncertain),
        "deferred": len(store.deferred),
        "activations answered activated": sum(activated.values()),
        "never shown": len(never_shown),
        "rewards sent": sum(len(xs) for xs in rewards.values()),
        "rewards recorded": sum(1 for xs in rewards.values() for a in xs if _status(a) == "recorded"),
        "rewards duplicate": sum(1 for xs in rewards.values() for a in xs if _status(a) == "duplicate"),
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


ACTIVE = ("activated", "already_active")


def _of_title(a: Answer, title: str | None) -> bool:
    """Whether an answer concerns `title` (a page's answer concerns every title of the page)."""
    if a.kind == "page":
        return True
    if a.impression_id is not None:
        return a.impression_id.split("~", 1)[0] == title
    # a fallback: a page's entry names its title; a single impression's answer is the plan's one title
    return not isinstance(a.body, dict) or a.body.get("title_id", title) == title


def _status(a: Answer) -> object:
    return a.body.get("status") if a.status == 200 and isinstance(a.body, dict) else None


def _result(a: Answer, impression_id: str) -> object:
    """The /activate answer's status for one id."""
    results = a.body.get("results") if isinstance(a.body, dict) else None
    return results.get(impression_id) if isinstance(results, dict) else None


def _graded_problems(
    store: StoreView, clicks: dict[str, list[Answer]], rewards: dict[str, list[Answer]], settled: bool
) -> list[str]:
    """Each label lies between the rewards clients were told were recorded (per event id; a click is the
    event 'click' of value 1) and that plus the rewards whose answers were lost; no event counts twice."""
    problems: list[str] = []
    bad: list[str] = []
    twice: list[str] = []
    for impression_id in set(clicks) | set(rewards) | set(store.labels):
        told: Counter[str] = Counter()
        values: dict[str, float] = {}
        maybe: set[str] = set()
        for a in clicks.get(impression_id, []):
            values["click"] = 1.0
            if a.recorded:
                told["click"] += 1
            elif a.uncertain:
                maybe.add("click")
        for a in rewards.get(impression_id, []):
            assert a.event_id is not None
            values[a.event_id] = reward_value(impression_id, a.event_id)
            if _status(a) == "recorded":
                told[a.event_id] += 1
            elif a.uncertain:
                maybe.add(a.event_id)
        twice += [f"{impression_id}/{e}" for e, n in told.items() if n > 1]
        low = sum(values[e] for e in told)
        high = low + sum(values[e] for e in maybe - set(told))
        labels = store.labels.get(impression_id)
        if labels is None:
            if settled and told and impression_id not in store.pending:
                bad.append(f"{impression_id}: rewards recorded, never labelled")
            continue
        if not low - 1e-9 <= labels[0] <= high + 1e-9:
            bad.append(f"{impression_id}: label {labels[0]!r} outside [{low!r}, {high!r}]")
    if twice:
        problems.append(f"reward events recorded twice: {len(twice)} (e.g. {sorted(twice)[:MAX_LISTED]})")
    if bad:
        problems.append(
            f"labels that disagree with the rewards told: {len(bad)} (e.g. {sorted(bad)[:MAX_LISTED]})"
        )
    return problems


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
