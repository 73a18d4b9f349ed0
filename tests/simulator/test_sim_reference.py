"""The batched in-process driver equals a plain event-by-event simulation of the service.

The reference below does what the service does, one event at a time: each impression is decided by
`decide` on the served copy, registered in `MemoryJoin`; clicks reach the join at their time; at each
snapshot boundary the expiry sweep labels what is due, `PolicyBook.apply` learns each label in order and
changed policies are re-published. The driver does the same with `decide_batch`, `label_batch` and
`apply_batch`. With ε-greedy (whose statistics are exact sums) both must choose the very same artworks.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from policies import Policy, create_policy, load_policy
from service.join.rule import MemoryJoin
from service.learning.book import PolicyBook
from service.store.records import LabelledEvent
from simulator.config import WorldConfig
from simulator.inprocess import VARIANT, InProcessRun, RunSettings
from simulator.traffic import Impressions, Traffic
from simulator.world import World


def reference(world: World, policy: str, s: RunSettings) -> tuple[np.ndarray, int]:
    """Artwork slot shown at each impression, and the number of labels learned, event by event."""
    n_titles = len(world.title_ids)
    seeds = np.random.SeedSequence([s.seed, 0x90C1]).generate_state(n_titles)
    keys = [(tid, VARIANT) for tid in world.title_ids]
    book = PolicyBook(
        {
            k: create_policy(policy, world.title_artworks(t), world.feature_names, int(seeds[t]))
            for t, k in enumerate(keys)
        }
    )
    reseeder = np.random.default_rng(np.random.SeedSequence([s.seed, 0x5E4D]))
    served: list[Policy] = []

    def publish(t: int) -> None:
        copy = load_policy(book.snapshot(keys[t]))
        copy.reseed(int(reseeder.integers(2**63)))
        if t < len(served):
            served[t] = copy
        else:
            served.append(copy)

    for t in range(n_titles):
        publish(t)
    imp = Impressions.concat(list(Traffic(world, s.seed, s.impressions).chunks()))
    truth = world.truth(imp.title, imp.viewer, imp.time, imp.views)
    join = MemoryJoin(s.window, retention=10 * s.window)
    clicks: list[tuple[float, int]] = []
    shown = np.empty(len(imp), dtype=np.int64)
    dirty: set[int] = set()
    boundary = s.snapshot_interval

    def reach(b: float) -> None:
        labels = []
        while clicks and clicks[0][0] < b:
            at, i = heapq.heappop(clicks)
            labels.append(join.click(str(i), at)[1])
        labels += join.expire(b)
        for lab in sorted(
            (x for x in labels if x is not None), key=lambda x: (x.labelled_at, int(x.impression_id))
        ):
            t, context, artwork, propensity, decided_at = lab.record
            event = LabelledEvent(
                lab.impression_id, world.title_ids[t], VARIANT, context, artwork, lab.reward, propensity,
                decided_at, lab.labelled_at,
            )  # fmt: skip
            assert book.apply(event)
            dirty.add(t)
        for t in sorted(dirty):
            publish(t)
        dirty.clear()

    for i in range(len(imp)):
        while imp.time[i] >= boundary:
            reach(boundary)
            boundary += s.snapshot_interval
        t = int(imp.title[i])
        context = dict(zip(world.feature_names, imp.context[i].tolist(), strict=True))
        decision = served[t].decide(context)
        slot = world.title_artworks(t).index(decision.arm)
        shown[i] = slot
        join.impress(
            str(i), float(imp.time[i]), (t, context, decision.arm, decision.propensity, float(imp.time[i]))
        )
        if imp.luck[i] < truth.probabilities[i, slot]:
            heapq.heappush(clicks, (float(imp.time[i] + imp.delay[i]), i))
    reach(boundary)  # the driver also learns what is due by the boundary after the last impression
    return shown, book.applied


@pytest.mark.parametrize("window", [3.0, 0.4])
def test_batched_driver_equals_event_by_event_reference(window: float) -> None:
    world = World.generate(
        WorldConfig(viewers=300, titles=2, artworks=3, tastes=4, rate=100.0, click_delay_median=1.0)
    )
    settings = RunSettings(impressions=3000, window=window, snapshot_interval=0.5, buckets=3000, seed=5)
    shown, learned = reference(world, "epsilon_greedy", settings)
    run = InProcessRun(world, "epsilon_greedy", {"early_updates": False}, settings)  # as the reference
    result = run.run()
    share = result.traffic_share.pivot_table(
        index="bucket", columns=["title_id", "artwork_id"], values="share"
    )
    driver_shown = np.array([np.flatnonzero(row.to_numpy() > 0)[0] % 3 for _, row in share.iterrows()])
    assert (driver_shown == shown).all()  # buckets of one impression: the very same artwork every time
    assert run.book.applied == learned
    # the policy changed its mind during the run, so the comparison is not between two uniform streams
    assert len(set(np.bincount(shown[-1000:], minlength=3).tolist())) > 1
