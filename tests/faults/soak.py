"""Soak runs: many impressions through one process, sampling its memory, to show nothing grows with traffic.

`soak_inprocess` is the per-event path the service takes, in one process on simulated time: the served
policy decides, `MemoryJoin` holds the impression until a click or its deadline, `PolicyBook` learns each
label, and every simulated second the learning policy is published (`to_bytes` → `load_policy`) as the
served copy. What may grow is bounded by settings: impressions pending for one window, finished ones
remembered for `retention`. `soak_simulator` drives the simulator's vectorized in-process driver.
Memory is sampled as RSS (what the OS sees) and `sys.getallocatedblocks()` (Python objects alive: a
leak of small objects shows here long before it moves the RSS).

`soak_http` drives a running `ServiceStack` over HTTP and samples the API workers' RSS and Redis's
`used_memory`, which must stay bounded by the retention settings (ARTBANDIT_RETENTION_EVENTS,
ARTBANDIT_RETENTION_SECONDS), not grow with the traffic.

`flat(values)` is the criterion: after warm-up, every sample within ±`tolerance` of the first one.
"""

from __future__ import annotations

import heapq
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies import Policy, create_policy, load_policy
from service.join.rule import Labelled, MemoryJoin
from service.learning.book import PolicyBook
from service.store import keys
from service.store.records import LabelledEvent
from tests.faults.load import LoadGenerator, LoadPlan, LoadResult
from tests.faults.stack import ServiceStack, rss_bytes

VARIANT = "soak"


@dataclass(frozen=True, slots=True)
class Sample:
    impressions: int
    seconds: float  # wall clock since the start
    rss: int  # bytes
    blocks: int  # sys.getallocatedblocks()
    extra: tuple[tuple[str, float], ...] = ()  # e.g. ("pending", 9870.0), ("redis_used_memory", ...)

    def get(self, name: str) -> float:
        return dict(self.extra)[name]


def sample(impressions: int, started: float, **extra: float) -> Sample:
    return Sample(
        impressions, time.perf_counter() - started, rss_bytes(os.getpid()), sys.getallocatedblocks(),
        tuple(extra.items()),
    )  # fmt: skip


@dataclass(frozen=True)
class Flatness:
    ok: bool
    reference: float  # the value at the end of warm-up
    low: float  # min/reference after warm-up
    high: float  # max/reference after warm-up

    def __str__(self) -> str:
        return f"{'flat' if self.ok else 'GROWS'}: {self.low:.3f}..{self.high:.3f} x {self.reference:,.0f}"


def flat(values: list[float], warmup: float = 0.2, tolerance: float = 0.10) -> Flatness:
    """After the first `warmup` fraction of the samples, every value within ±`tolerance` of the value at
    the end of warm-up."""
    if len(values) < 5:
        raise ValueError(f"need at least 5 samples to judge flatness, got {len(values)}")
    start = max(1, int(len(values) * warmup))
    ref = values[start]
    after = np.asarray(values[start:], dtype=float) / ref
    return Flatness(
        bool(after.min() >= 1 - tolerance and after.max() <= 1 + tolerance), ref, after.min(), after.max()
    )


@dataclass(frozen=True)
class InProcessSoak:
    impressions: int
    titles: int = 4
    arms: int = 8
    features: int = 8
    rate: float = 1000.0  # simulated impressions per second
    window: float = 10.0  # attribution window, simulated seconds
    retention: float = 10.0  # finished impressions are remembered this long after their deadline
    policy: str = "linucb"
    samples: int = 40
    seed: int = 1

    def __post_init__(self) -> None:
        for name in ("impressions", "titles", "arms", "features", "samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("rate", "window", "retention"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


def soak_inprocess(cfg: InProcessSoak, leak_bytes: int = 0) -> list[Sample]:
    """Run `cfg.impressions` through decide → join → learn → publish; returns memory samples.
    `leak_bytes` > 0 keeps that many bytes per impression alive forever (to show `flat` catches a leak)."""
    rng = np.random.default_rng(cfg.seed)
    names = [f"f{j}" for j in range(cfg.features)]
    arms = [f"a{k}" for k in range(cfg.arms)]
    taste = rng.normal(size=(cfg.titles, cfg.arms, cfg.features))  # the simulated viewers' click model
    book = PolicyBook(
        {
            (f"t{t}", VARIANT): create_policy(cfg.policy, arms, names, seed=cfg.seed + t)
            for t in range(cfg.titles)
        }
    )
    served: list[Policy] = [load_policy(book.snapshot((f"t{t}", VARIANT))) for t in range(cfg.titles)]
    join = MemoryJoin(cfg.window, retention=cfg.retention)
    clicks: list[tuple[float, int, str]] = []  # (time, seq, impression id)
    leaked: list[bytes] = []
    every = max(1, cfg.impressions // cfg.samples)
    out: list[Sample] = []
    started = time.perf_counter()
    next_second = 1.0
    chunk = 4096
    for base in range(0, cfg.impressions, chunk):
        contexts = rng.random((min(chunk, cfg.impressions - base), cfg.features))
        draws = rng.random((len(contexts), 4))
        for j, x in enumerate(contexts):
            i = base + j
            now = i / cfg.rate
            while clicks and clicks[0][0] <= now:
                at, _, impression_id = heapq.heappop(clicks)
                _, label = join.click(impression_id, at)
                if label is not None:
                    _learn(book, label)
            if now >= next_second:
                for label in join.expire(now):
                    _learn(book, label)
                served = [load_policy(book.snapshot((f"t{t}", VARIANT))) for t in range(cfg.titles)]
                next_second += 1.0
            t = i % cfg.titles
            context = dict(zip(names, x.tolist(), strict=True))
            decision = served[t].decide(context)
            impression_id = f"t{t}~{i}"
            join.impress(impression_id, now, (t, context, decision.arm, decision.propensity, now))
            k = arms.index(decision.arm)
            p_click = 1.0 / (1.0 + np.exp(-(taste[t, k] @ x) + 2.0))
            if draws[j, 0] < p_click:
                delay = draws[j, 1] * cfg.window * (1.2 if draws[j, 2] < 0.1 else 0.8)  # some late
                heapq.heappush(clicks, (now + delay, i, impression_id))
                if draws[j, 3] < 0.1:
                    heapq.heappush(clicks, (now + delay + 0.5, -i, impression_id))  # a duplicate
            if leak_bytes:
                leaked.append(bytes(leak_bytes) + impression_id.encode())
            if i % every == 0 or i == cfg.impressions - 1:
                out.append(sample(i + 1, started, pending=float(join.pending), applied=float(book.applied)))
    return out


def _learn(book: PolicyBook, label: Labelled) -> None:
    t, context, arm, propensity, decided_at = label.record
    event = LabelledEvent(
        label.impression_id,
        f"t{t}",
        VARIANT,
        context,
        arm,
        label.reward,
        propensity,
        decided_at,
        label.labelled_at,
    )
    book.apply(event)


def soak_simulator(
    impressions: int, policy: str = "linucb", samples: int = 40, seed: int = 1
) -> list[Sample]:
    """The simulator's in-process driver (`simulator.inprocess.run_inprocess`), sampled as it goes."""
    from simulator.config import WorldConfig
    from simulator.inprocess import RunSettings, run_inprocess
    from simulator.world import World

    world = World.generate(WorldConfig(titles=4, artworks=8, tastes=16, rate=2000.0))
    every = max(1, impressions // samples)
    out: list[Sample] = []
    seen = [0, 0]  # impressions so far, next sample at
    started = time.perf_counter()

    def progress(n: int) -> Any:
        seen[0] += n
        if seen[0] >= seen[1]:
            out.append(sample(seen[0], started))
            seen[1] += every

    run_inprocess(world, policy, None, RunSettings(impressions=impressions, seed=seed), progress=progress)
    return out


def soak_http(stack: ServiceStack, plan: LoadPlan, every: float = 1.0) -> tuple[list[Sample], LoadResult]:
    """Drive `stack` with `plan` (the title must exist) and sample, every `every` seconds, the API workers'
    and the learner's RSS and Redis's memory and key counts. RSS in the samples is the workers' sum."""
    r = stack.client()
    gen = LoadGenerator(stack.base_url, plan).start()
    out: list[Sample] = []
    started = time.perf_counter()
    try:
        while True:
            done = not gen.running
            workers = [rss_bytes(p) for p in stack.worker_pids()]
            learner = rss_bytes(stack.learner.pid) if stack.learner is not None else 0
            memory = r.info("memory")
            out.append(
                Sample(
                    gen.sent, time.perf_counter() - started, sum(workers), 0,
                    (
                        ("worker_rss_max", float(max(workers, default=0))),
                        ("learner_rss", float(learner)),
                        ("redis_used_memory", float(memory["used_memory"])),
                        ("redis_keys", float(r.dbsize())),
                        ("decisions", float(r.xlen(keys.decisions_stream(plan.title_id)))),
                        ("labelled", float(r.xlen(keys.labelled_stream(plan.title_id)))),
                        ("pending", float(r.zcard(keys.pending(plan.title_id)))),
                    ),
                )
            )  # fmt: skip
            if done:
                break
            time.sleep(every)
    finally:
        result = gen.wait()
        r.close()
    return out, result
