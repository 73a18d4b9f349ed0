"""The in-process driver: the real policies, the service's join rule and its learner core, on simulated time.

Semantics (the same as the served system, minus the network):
- every title has one learning policy in a `PolicyBook`; the *served* policy is a copy made with
  `load_policy(learning.to_bytes())`, republished each snapshot interval (`SnapshotClock`) and whenever
  the catalog changes (new artworks appear);
- impressions are decided by the served copy; between publications it is frozen, so one interval's
  impressions of a title are decided with one `decide_batch` call;
- each impression gets its reward and label time from `service.join.rule.label_batch` (the join rule: reward 1
  if the first click falls within the attribution window, else 0; labelled at the deadline);
- labels are applied by `PolicyBook.apply_batch` in labelled-time order (ties: decision order) as
  simulated time passes, so a label reaches the served policy at the first publication after it;
- with a policy's `early_updates`, the learner instead enters each decision when it is made
  (`PolicyBook.apply_decided_batch`) and each click the join accepts (the first, within the window) when
  it arrives (`apply_reward_batch`); the deadline then adds nothing (a reward is a click, already in), so
  once a window has closed the statistics equal deadline-only learning. The served learner does the same
  from the decisions and clicks streams (`service/learning/early.py`).

A served copy gets a fresh random stream at each publication; otherwise every copy would restart from the
learning policy's generator state and repeat the same draws interval after interval.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies import Policy, create_policy, load_policy
from service.join.rule import label_batch
from service.learning.book import PolicyBook, SnapshotClock
from simulator.metrics import Recorder, RunResult
from simulator.traffic import Impressions, Traffic
from simulator.world import World

VARIANT = "sim"
Progress = Callable[[int], object]


@dataclass(frozen=True)
class RunSettings:
    impressions: int = 200_000
    window: float = 60.0  # attribution window, seconds
    snapshot_interval: float = 1.0  # seconds between publications of the served policy
    buckets: int = 50
    seed: int = 1

    def __post_init__(self) -> None:
        from policies.base import check_number

        check_number("impressions", self.impressions, low=1, integer=True)
        check_number("window", self.window, low=0.0, low_open=True)
        check_number("snapshot_interval", self.snapshot_interval, low=0.0, low_open=True)
        check_number("buckets", self.buckets, low=1, integer=True)
        check_number("seed", self.seed, low=0, integer=True)


class _Slicer:
    """Cuts a chunked impression stream at arbitrary times."""

    def __init__(self, chunks: Iterator[Impressions]) -> None:
        self._chunks = chunks
        self._buf: Impressions | None = None
        self.done = False
        self.position = 0  # index in the run of the next impression

    def until(self, t: float) -> tuple[np.ndarray, Impressions | None]:
        parts: list[Impressions] = []
        while True:
            if self._buf is None:
                self._buf = next(self._chunks, None)
                if self._buf is None:
                    self.done = True
                    break
            cut = int(np.searchsorted(self._buf.time, t, side="left"))
            if cut:
                parts.append(self._buf.take(slice(0, cut)))
            if cut < len(self._buf):
                self._buf = self._buf.take(slice(cut, None))
                break
            self._buf = None
        if not parts:
            return np.empty(0, dtype=np.int64), None
        block = parts[0] if len(parts) == 1 else Impressions.concat(parts)
        index = np.arange(self.position, self.position + len(block))
        self.position += len(block)
        return index, block


class _LabelQueue:
    """Labelled events waiting for their label time; each pushed block is sorted by label time."""

    _KEYS = ("labelled_at", "seq", "title", "context", "artwork", "reward", "propensity")

    def __init__(self) -> None:
        self._blocks: list[dict[str, np.ndarray]] = []

    def push(self, **arrays: np.ndarray) -> None:
        order = np.argsort(arrays["labelled_at"], kind="stable")
        self._blocks.append({k: arrays[k][order] for k in self._KEYS})

    def pop_before(self, t: float) -> dict[str, np.ndarray] | None:
        """Every event labelled before t, sorted by (title, label time, decision order)."""
        taken, kept = [], []
        for block in self._blocks:
            cut = int(np.searchsorted(block["labelled_at"], t, side="left"))
            if cut:
                taken.append({k: v[:cut] for k, v in block.items()})
            if cut < len(block["labelled_at"]):
                kept.append({k: v[cut:] for k, v in block.items()} if cut else block)
        self._blocks = kept
        if not taken:
            return None
        out = {k: np.concatenate([b[k] for b in taken]) for k in self._KEYS}
        order = np.lexsort((out["seq"], out["labelled_at"], out["title"]))
        return {k: v[order] for k, v in out.items()}

    @property
    def pending(self) -> int:
        return sum(len(b["seq"]) for b in self._blocks)


def _segments(keys: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(key, start, stop) runs of equal values in a sorted array."""
    if not len(keys):
        return
    edges = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.r_[0, edges]
    stops = np.r_[edges, len(keys)]
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        yield int(keys[a]), a, b


class InProcessRun:
    """One policy on one world: build with the policy name and parameters, then `run()`."""

    def __init__(
        self, world: World, policy: str, params: Mapping[str, Any] | None, settings: RunSettings
    ) -> None:
        self.world = world
        self.policy_name = policy
        self.settings = settings
        seeds = np.random.SeedSequence([settings.seed, 0x90C1]).generate_state(len(world.title_ids))
        self._keys = [(tid, VARIANT) for tid in world.title_ids]
        self.book = PolicyBook(
            {
                key: create_policy(
                    policy,
                    world.title_artworks(t, at=0.0),
                    world.feature_names,
                    int(seeds[t]),
                    **dict(params or {}),
                )
                for t, key in enumerate(self._keys)
            }
        )
        self._served: list[Policy] = []
        self._dirty = np.zeros(len(self._keys), dtype=bool)
        self._reseeder = np.random.default_rng(np.random.SeedSequence([settings.seed, 0x5E4D]))
        self._artwork_index = {a: g for g, a in enumerate(world.artwork_ids)}
        self._slot_of = np.zeros(len(world.artwork_ids), dtype=np.int64)
        for row in world.slots:
            for s, g in enumerate(row):
                if g >= 0:
                    self._slot_of[g] = s
        self._learn_pos = np.full(len(world.artwork_ids), -1, dtype=np.int64)
        self._early = next(iter(self.book.policies.values())).early_updates
        self._global_cache: dict[tuple[str, ...], np.ndarray] = {}
        self.publications = 0

    # ----------------------------------------------------------------- publication
    def _publish(self, t: int) -> None:
        served = load_policy(self.book.snapshot(self._keys[t]))
        served.reseed(int(self._reseeder.integers(2**63)))
        if t < len(self._served):
            self._served[t] = served
        else:
            self._served.append(served)
        self._dirty[t] = False
        self.publications += 1

    def _refresh_learn_positions(self, t: int) -> None:
        for j, arm in enumerate(self.book.policies[self._keys[t]].arms):
            self._learn_pos[self._artwork_index[arm]] = j

    def _add_artworks(self, at: float) -> None:
        w = self.world
        for t, key in enumerate(self._keys):
            new = [g for g in w.slots[t] if g >= 0 and w.appears_at[g] == at]
            for g in new:
                self.book.policies[key].add_arm(w.artwork_ids[g], w.artwork_features(int(g)))
            if new:
                self._refresh_learn_positions(t)
                self._publish(t)

    def _global(self, arms: tuple[str, ...]) -> np.ndarray:
        cached = self._global_cache.get(arms)
        if cached is None:
            cached = np.array([self._artwork_index[a] for a in arms], dtype=np.int64)
            self._global_cache[arms] = cached
        return cached

    # ----------------------------------------------------------------- the loop
    def run(self, progress: Progress | None = None) -> RunResult:
        w, s = self.world, self.settings
        for t in range(len(self._keys)):
            self._refresh_learn_positions(t)
            self._publish(t)
        # 1e-9 shorter so float rounding of k * interval never skips a publication
        clock = SnapshotClock(s.snapshot_interval * (1.0 - 1e-9), last=0.0)
        recorder = Recorder(s.impressions, s.buckets, len(w.title_ids), w.slots.shape[1])
        queue = _LabelQueue()
        stream = _Slicer(Traffic(w, s.seed, s.impressions).chunks())
        arrivals = [a for a in w.arrival_times]
        clicked = 0
        started = _time.perf_counter()
        k = 0
        now = 0.0
        while not stream.done:
            next_publication = (k + 1) * s.snapshot_interval
            t1 = min(next_publication, arrivals[0]) if arrivals else next_publication
            index, block = stream.until(t1)
            if block is not None:
                clicked += self._decide(index, block, recorder, queue)
                if progress is not None:
                    progress(len(index))
            self._learn(queue.pop_before(t1))
            now = t1
            if arrivals and t1 >= arrivals[0]:
                self._add_artworks(arrivals.pop(0))
            if t1 >= next_publication:
                k += 1
                if clock.due(now):
                    for title in np.flatnonzero(self._dirty).tolist():
                        self._publish(title)
        elapsed = _time.perf_counter() - started
        extra = {
            "clicks_in_window": float(recorder.clicks.sum()),
            "clicks_any_time": float(clicked),
            "labels_pending_at_end": float(queue.pending),
            "learned": float(self.book.applied),
            "decided_early": float(self.book.decided),
            "rewarded_early": float(self.book.rewarded),
            "publications": float(self.publications),
            "simulated_seconds": float(now),
            "wall_seconds": elapsed,
            "impressions_per_second": s.impressions / max(elapsed, 1e-9),
        }
        slot_ids = [[w.artwork_ids[g] for g in row if g >= 0] for row in w.slots]
        return RunResult(
            self.policy_name,
            s.seed,
            recorder.summary(),
            recorder.timeseries(),
            recorder.traffic_share(w.title_ids, slot_ids),
            extra,
        )

    def _decide(self, index: np.ndarray, block: Impressions, recorder: Recorder, queue: _LabelQueue) -> int:
        n = len(block)
        chosen = np.empty(n, dtype=np.int64)
        propensity = np.empty(n)
        order = np.argsort(block.title, kind="stable")
        titles_sorted = block.title[order]
        for t, a, b in _segments(titles_sorted):
            rows = order[a:b]
            decision = self._served[t].decide_batch(block.context[rows])
            chosen[rows] = self._global(decision.arms)[decision.chosen]
            propensity[rows] = decision.propensities
        truth = self.world.truth(block.title, block.viewer, block.time, block.views)
        slot = self._slot_of[chosen]
        expected = truth.probabilities[np.arange(n), slot]
        click = block.luck < expected
        first_click = np.where(click, block.time + block.delay, np.inf)
        reward, labelled_at = label_batch(block.time, first_click, self.settings.window)
        recorder.add(
            index, block.time, block.title, slot, expected, truth.oracle, truth.uniform, reward,
            truth.probabilities.argmax(axis=1),
        )  # fmt: skip
        if not self._early:
            queue.push(
                labelled_at=labelled_at, seq=index, title=block.title, context=block.context,
                artwork=chosen, reward=reward, propensity=propensity,
            )  # fmt: skip
            return int(click.sum())
        # Early updates: the decisions enter now; the clicks the join accepts (reward 1: the first click,
        # within the window) enter at their click time; the deadline has nothing left to add.
        for t, a, b in _segments(titles_sorted):
            rows = order[a:b]
            self.book.apply_decided_batch(self._keys[t], block.context[rows], self._learn_pos[chosen[rows]])
            self._dirty[t] = True
        won = reward > 0
        queue.push(
            labelled_at=first_click[won], seq=index[won], title=block.title[won],
            context=block.context[won], artwork=chosen[won], reward=reward[won], propensity=propensity[won],
        )  # fmt: skip
        return int(click.sum())

    def _learn(self, due: dict[str, np.ndarray] | None) -> None:
        if due is None:
            return
        for t, a, b in _segments(due["title"]):
            arms = self._learn_pos[due["artwork"][a:b]]
            if self._early:
                self.book.apply_reward_batch(self._keys[t], due["context"][a:b], arms, due["reward"][a:b])
            else:
                self.book.apply_batch(
                    self._keys[t], due["context"][a:b], arms, due["reward"][a:b], due["propensity"][a:b]
                )
            self._dirty[t] = True


def run_inprocess(
    world: World,
    policy: str,
    params: Mapping[str, Any] | None = None,
    settings: RunSettings | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run one policy on a world and return its metrics."""
    return InProcessRun(world, policy, params, settings or RunSettings()).run(progress)
