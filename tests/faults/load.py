"""A small load generator for fault tests: impressions (or whole pages) at a bounded rate, clicks, activations
and graded rewards after a delay, every answer recorded.

    gen = LoadGenerator("http://127.0.0.1:8000", LoadPlan("t1", impressions=600, rate=100)).start()
    ...                      # inject a fault while it runs (gen.sent tells how far it got)
    result = gen.wait()      # stops by itself: a fixed count, and a hard deadline

Open loop: impression n is due at start + n / rate, whatever the server does; at most `threads` requests
are in flight (loopback only). Each impression that gets a logged answer may be clicked after a random
delay, sometimes twice (a duplicate), sometimes after the attribution window (a late click). A click
answered 503 or lost in transit is sent again after the Retry-After (capped), as a well-behaved client
would, up to `click_attempts` sends; impressions are never re-sent. Every attempt is kept, so the
reconciliation (tests/faults/reconcile.py) can compare exactly what clients were told with what Redis holds.

Pages (`page_size` > 1): each impression task is one POST /impressions of `page_titles(plan)`, recorded as
one "page" answer plus one "impression" answer per entry. With `defer`, each logged impression is
activated (POST /activate) with `activate_probability`; the rest stay deferred (never shown). With
`reward_probability`, an impression gets graded rewards (POST /reward with an event id; sometimes sent
twice with the same event id, as a client retry would). Activations and rewards are retried like clicks.
"""

from __future__ import annotations

import heapq
import http.client
import json
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
RETRIED = ("click", "activate", "reward")  # idempotent requests a client sends again after no answer


@dataclass(frozen=True)
class LoadPlan:
    title_id: str
    impressions: int
    rate: float  # impressions per second
    features: tuple[str, ...] = ("romance", "horror")
    users: int = 1000
    click_probability: float = 0.3
    max_click_delay: float = 1.0  # seconds after the answer
    duplicate_probability: float = 0.1  # of clicked impressions, clicked a second time
    late_probability: float = 0.0  # of impressions, clicked once more `late_delay` seconds after the answer
    late_delay: float = 0.0
    click_attempts: int = 5  # sends of one click at most (the first and its retries)
    retry_cap: float = 0.5  # seconds: Retry-After is honoured up to this
    threads: int = 8
    timeout: float = 5.0  # seconds per request
    max_duration: float = 120.0  # seconds: the run stops here whatever is left
    seed: int = 1
    page_size: int = 1  # > 1: POST /impressions of `page_titles(plan)` instead of POST /impression
    defer: bool = False  # pages only: decide with defer, then activate some
    activate_probability: float = 0.7  # of deferred impressions, activated (the rest are never shown)
    reward_probability: float = 0.0  # of impressions, given graded rewards (needs a `sum` reward title)

    def __post_init__(self) -> None:
        _check("impressions", self.impressions, 1, 10_000_000)
        _check("rate", self.rate, 0.001, 100_000)
        _check("users", self.users, 1, 10**9)
        _check("page_size", self.page_size, 1, 100)
        for name in (
            "click_probability", "duplicate_probability", "late_probability", "activate_probability",
            "reward_probability",
        ):  # fmt: skip
            _check(name, getattr(self, name), 0.0, 1.0)
        _check("max_click_delay", self.max_click_delay, 0.0, 3600)
        _check("late_delay", self.late_delay, 0.0, 3600)
        _check("click_attempts", self.click_attempts, 1, 100)
        _check("retry_cap", self.retry_cap, 0.0, 60)
        _check("threads", self.threads, 1, 256)
        _check("timeout", self.timeout, 0.01, 600)
        _check("max_duration", self.max_duration, 0.1, 86_400)


def _check(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")


def page_titles(plan: LoadPlan) -> list[str]:
    """The titles of one page: the plan's title, then fillers `<title>-row1`, `<title>-row2`, ..."""
    return [plan.title_id] + [f"{plan.title_id}-row{j}" for j in range(1, plan.page_size)]


def reward_value(impression_id: str, event_id: str) -> float:
    """The graded reward a client sends for one event: deterministic, so a retry sends the same value."""
    return round(random.Random(f"{impression_id}/{event_id}").uniform(0.1, 5.0), 3)


@dataclass(frozen=True, slots=True)
class Answer:
    """One request and what came back. `status` None: no HTTP answer (refused, reset, timed out)."""

    kind: str  # "impression" | "click" | "page" | "activate" | "reward"
    n: int  # the impression's number in the plan
    impression_id: str | None  # for clicks: the id clicked; for impressions: the id answered (None: fallback)
    attempt: int  # 1 for a first send, 2.. for retries of a click
    status: int | None
    body: Any
    error: str | None
    sent_at: float  # monotonic seconds since the run started
    elapsed: float
    event_id: str | None = None  # rewards: the event id sent (its value is `reward_value`)

    @property
    def logged(self) -> bool:
        """An impression answered 200 with an impression id: the service says it logged the decision."""
        return self.kind == "impression" and self.status == 200 and self.impression_id is not None

    @property
    def recorded(self) -> bool:
        return self.kind == "click" and self.status == 200 and _status_of(self.body) == "recorded"

    @property
    def uncertain(self) -> bool:
        """No answer, or a 5xx: the request may or may not have taken effect."""
        return self.status is None or self.status >= 500


def _status_of(body: Any) -> Any:
    return body.get("status") if isinstance(body, dict) else None


@dataclass
class LoadResult:
    plan: LoadPlan
    answers: list[Answer]
    duration: float
    unsent: int  # impressions and clicks still due when the deadline stopped the run

    def counts(self) -> Counter[str]:
        """'impression 200', 'impression fallback', 'click recorded', 'click 503', 'click no answer', ..."""
        out: Counter[str] = Counter()
        for a in self.answers:
            if a.status is None:
                what = "no answer"
            elif a.kind == "impression" and a.status == 200:
                what = "logged" if a.impression_id is not None else "fallback"
            elif a.kind == "click" and a.status == 200:
                what = str(_status_of(a.body))
            else:
                what = str(a.status)
            out[f"{a.kind} {what}"] += 1
        return out

    @property
    def requests(self) -> int:
        return len(self.answers)


@dataclass(order=True)
class _Task:
    due: float
    seq: int
    kind: str = field(compare=False)
    n: int = field(compare=False)
    impression_id: str | None = field(compare=False, default=None)
    attempt: int = field(compare=False, default=1)
    event_id: str | None = field(compare=False, default=None)


class LoadGenerator:
    def __init__(self, base_url: str, plan: LoadPlan) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK or parts.port is None:
            raise ValueError(f"base_url must be http://<loopback>:<port>, got {base_url!r}")
        self.host, self.port = parts.hostname, parts.port
        self.plan = plan
        self.answers: list[Answer] = []
        self._heap: list[_Task] = []
        self._cv = threading.Condition()
        self._work: queue.Queue[_Task | None] = queue.Queue()
        self._busy = 0
        self._seq = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._next_impression = 0
        self._unsent = 0
        self._duration = 0.0

    # ----------------------------------------------------------------- control
    @property
    def sent(self) -> int:
        """Impressions handed to a sender so far."""
        return self._next_impression

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def start(self) -> LoadGenerator:
        self._t0 = time.monotonic()
        self._threads = [
            threading.Thread(target=self._sender, name=f"load-sender-{i}", daemon=True)
            for i in range(self.plan.threads)
        ]
        self._threads.append(threading.Thread(target=self._schedule, name="load-scheduler", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop scheduling now (what is in flight still completes)."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()

    def wait(self) -> LoadResult:
        """Block until every scheduled request was sent and answered (or the deadline passed)."""
        for t in self._threads:
            t.join(self.plan.max_duration + 2 * self.plan.timeout + 5)
            if t.is_alive():
                raise RuntimeError(f"{t.name} did not stop")
        with self._cv:
            return LoadResult(self.plan, list(self.answers), self._duration, self._unsent)

    # ----------------------------------------------------------------- scheduling
    def _push(
        self,
        delay: float,
        kind: str,
        n: int,
        impression_id: str | None = None,
        attempt: int = 1,
        event_id: str | None = None,
    ) -> None:
        """Add a follow-up request (caller holds the condition)."""
        self._seq += 1
        task = _Task(self.elapsed() + delay, self._seq, kind, n, impression_id, attempt, event_id)
        heapq.heappush(self._heap, task)
        self._cv.notify()

    def _schedule(self) -> None:
        plan = self.plan
        try:
            while True:
                with self._cv:
                    now = self.elapsed()
                    if self._stop.is_set() or now > plan.max_duration:
                        self._unsent = len(self._heap) + plan.impressions - self._next_impression
                        break
                    t_imp = (
                        self._next_impression / plan.rate
                        if self._next_impression < plan.impressions
                        else None
                    )
                    t_heap = self._heap[0].due if self._heap else None
                    if t_imp is None and t_heap is None:
                        if self._busy == 0:
                            break  # nothing due, nothing in flight that could add more: done
                        self._cv.wait(0.05)
                        continue
                    due = min(t for t in (t_imp, t_heap) if t is not None)
                    if due > now:
                        self._cv.wait(due - now)
                        continue
                    if t_imp is not None and (t_heap is None or t_imp <= t_heap):
                        task = _Task(t_imp, -1, "impression", self._next_impression)
                        self._next_impression += 1
                    else:
                        task = heapq.heappop(self._heap)
                    self._busy += 1
                self._work.put(task)
        finally:
            self._duration = self.elapsed()
            for _ in range(plan.threads):
                self._work.put(None)

    # ----------------------------------------------------------------- sending
    def _sender(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            task = self._work.get()
            if task is None:
                break
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.plan.timeout)
            answers, retry_after = self._send(conn, task)
            if answers[0].status is None:
                conn.close()
                conn = None
            with self._cv:
                for answer in answers:
                    self.answers.append(answer)
                    self._follow_up(task, answer, retry_after)
                self._busy -= 1
                self._cv.notify_all()
        if conn is not None:
            conn.close()

    def _send(self, conn: http.client.HTTPConnection, task: _Task) -> tuple[list[Answer], float]:
        """The answer (for a page: the page's, then one per entry) and the Retry-After."""
        plan = self.plan
        payload: dict[str, Any]
        kind = task.kind
        if task.kind == "impression":
            rng = random.Random(plan.seed * 1_000_003 + task.n)
            payload = {
                "title_id": plan.title_id,
                "user_id": f"u{rng.randrange(plan.users)}",
                "context": {f: round(rng.random(), 3) for f in plan.features},
            }
            path = "/impression"
            if plan.page_size > 1:
                del payload["title_id"]
                payload.update(titles=page_titles(plan), defer=plan.defer)
                path, kind = "/impressions", "page"
        elif task.kind == "activate":
            payload, path = {"impression_ids": [task.impression_id]}, "/activate"
        elif task.kind == "reward":
            assert task.impression_id is not None and task.event_id is not None
            value = reward_value(task.impression_id, task.event_id)
            payload = {"impression_id": task.impression_id, "value": value, "event_id": task.event_id}
            path = "/reward"
        else:
            payload, path = {"impression_id": task.impression_id}, "/click"
        sent_at = self.elapsed()
        status: int | None = None
        body: Any = None
        error: str | None = None
        retry_after = 1.0
        try:
            conn.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
            retry_after = float(resp.getheader("Retry-After") or 1.0)
            body = json.loads(raw) if raw else None
        except (OSError, http.client.HTTPException) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        except ValueError as exc:  # an answer that is not JSON
            error = f"not JSON: {exc}"
        impression_id = task.impression_id
        if task.kind == "impression" and status == 200 and isinstance(body, dict):
            impression_id = body.get("impression_id")
        elapsed = self.elapsed() - sent_at
        answer = Answer(
            kind, task.n, impression_id, task.attempt, status, body, error, sent_at, elapsed, task.event_id
        )
        answers = [answer]
        if kind == "page" and status == 200 and isinstance(body, dict):
            for j, entry in enumerate(body.get("impressions", [])):
                answers.append(
                    Answer(
                        "impression",
                        task.n * 1000 + j,
                        entry.get("impression_id"),
                        1,
                        status,
                        entry,
                        None,
                        sent_at,
                        elapsed,
                    )  # fmt: skip
                )
        return answers, retry_after

    def _follow_up(self, task: _Task, answer: Answer, retry_after: float) -> None:
        """Schedule the clicks an impression earned, or the retry of a click (caller holds the condition)."""
        plan = self.plan
        if answer.logged:
            n = answer.n
            rng = random.Random(plan.seed * 7_000_003 + n)
            if rng.random() < plan.click_probability:
                delay = rng.uniform(0.0, plan.max_click_delay)
                self._push(delay, "click", n, answer.impression_id)
                if rng.random() < plan.duplicate_probability:
                    self._push(delay + rng.uniform(0.0, 0.3), "click", n, answer.impression_id)
            if rng.random() < plan.late_probability:
                self._push(plan.late_delay, "click", n, answer.impression_id)
            if plan.defer and rng.random() < plan.activate_probability:
                self._push(rng.uniform(0.0, plan.max_click_delay), "activate", n, answer.impression_id)
            if rng.random() < plan.reward_probability:
                for event in ("e1", "e2")[: rng.randint(1, 2)]:
                    delay = rng.uniform(0.0, plan.max_click_delay)
                    self._push(delay, "reward", n, answer.impression_id, event_id=event)
                    if rng.random() < plan.duplicate_probability:  # the client sends it again
                        self._push(delay + 0.1, "reward", n, answer.impression_id, event_id=event)
        elif task.kind in RETRIED and answer.uncertain and task.attempt < plan.click_attempts:
            delay = min(max(retry_after, 0.0), plan.retry_cap)
            self._push(delay, task.kind, task.n, task.impression_id, task.attempt + 1, task.event_id)
