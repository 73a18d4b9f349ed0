"""The stream of impressions a world produces, independent of any policy.

Impressions arrive as a Poisson process at the world's rate. Each comes from a returning viewer (one seen
before, uniformly) with probability `returning`, else from a new one, for a title drawn by popularity.
Alongside every impression the stream carries the random numbers its outcome needs: a uniform number
(the viewer clicks the shown artwork iff it is below that artwork's click probability) and a click delay.
Every policy therefore meets the same viewers and the same luck (common random numbers), which makes
comparisons between policies much less noisy. The stream is generated in fixed-size chunks from one
seeded generator, so it is identical for a seed whatever the consumer does with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from simulator.world import World

CHUNK = 8192
MAX_VIEW_PAIRS = 50_000_000


@dataclass(frozen=True)
class Impressions:
    """n impressions in time order; `context` is what the service sees (true taste plus noise)."""

    time: np.ndarray  # (n,) seconds
    viewer: np.ndarray  # (n,) viewer index
    title: np.ndarray  # (n,) title index
    context: np.ndarray  # (n, D)
    views: np.ndarray  # (n,) earlier impressions of this viewer on this title (0 when fatigue is off)
    luck: np.ndarray  # (n,) uniform in [0, 1): click iff luck < click probability of the shown artwork
    delay: np.ndarray  # (n,) seconds from impression to click, if there is a click

    def __len__(self) -> int:
        return len(self.time)

    def take(self, sl: slice | np.ndarray) -> Impressions:
        return Impressions(*(getattr(self, f)[sl] for f in _FIELDS))

    @staticmethod
    def concat(parts: list[Impressions]) -> Impressions:
        return Impressions(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("time", "viewer", "title", "context", "views", "luck", "delay")


class Traffic:
    """Generates `total` impressions of a world for a seed, chunk by chunk. `rate` overrides the world's
    arrival rate (impressions per second); the rest of the stream does not depend on it."""

    def __init__(self, world: World, seed: int, total: int, rate: float | None = None) -> None:
        if total < 1:
            raise ValueError(f"impressions must be >= 1, got {total}")
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be > 0 impressions/s, got {rate!r}")
        self.world = world
        self.total = total
        self.rate = float(world.config.rate if rate is None else rate)
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7AFF1C]))
        self._now = 0.0
        self._seen = 0  # viewers seen so far: indices [0, seen)
        self._made = 0
        n_titles = len(world.title_ids)
        # earlier views per (viewer, title), kept only when fatigue needs them
        pairs = world.tastes.shape[0] * n_titles
        if world.config.fatigue and pairs > MAX_VIEW_PAIRS:
            raise ValueError(f"with fatigue, viewers x titles must be <= {MAX_VIEW_PAIRS:,}, got {pairs:,}")
        self._views = np.zeros(pairs if world.config.fatigue else 0, dtype=np.int32)

    def chunks(self) -> Iterator[Impressions]:
        while self._made < self.total:
            n = min(CHUNK, self.total - self._made)
            yield self._chunk(n)
            self._made += n

    def _chunk(self, n: int) -> Impressions:
        c, rng = self.world.config, self._rng
        n_viewers, n_titles = self.world.tastes.shape[0], len(self.world.title_ids)
        time = self._now + np.cumsum(rng.exponential(1.0, size=n)) / self.rate
        self._now = float(time[-1])
        # new or returning: a new viewer takes the next unseen index while the pool lasts
        wants_new = rng.random(n) >= c.returning
        wants_new[0] |= self._seen == 0
        new_rank = self._seen + np.cumsum(wants_new) - 1  # index a new viewer gets (ranks only grow)
        is_new = wants_new & (new_rank < n_viewers)
        seen_before = self._seen + np.cumsum(is_new) - is_new  # viewers seen before this impression
        returning = np.floor(rng.random(n) * np.maximum(seen_before, 1)).astype(np.int64)
        viewer = np.where(is_new, new_rank, returning)
        self._seen = int(min(self._seen + is_new.sum(), n_viewers))
        title = rng.choice(n_titles, size=n, p=self.world.popularity)
        context = self.world.tastes[viewer]
        if c.context_noise:
            context = context + rng.normal(0.0, c.context_noise, size=context.shape)
        views = self._count_views(viewer * n_titles + title) if c.fatigue else np.zeros(n, dtype=np.int64)
        luck = rng.random(n)
        if c.click_delay_median > 0:
            delay = c.click_delay_median * np.exp(c.click_delay_sigma * rng.standard_normal(n))
        else:
            delay = np.zeros(n)
            rng.standard_normal(n)  # keep the stream aligned across delay settings
        return Impressions(time, viewer, title, context, views, luck, delay)

    def _count_views(self, key: np.ndarray) -> np.ndarray:
        """For each impression, how many earlier impressions had the same (viewer, title) key."""
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        start = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
        group_start = np.maximum.accumulate(np.where(start, np.arange(len(key)), 0))
        within = np.empty(len(key), dtype=np.int64)
        within[order] = np.arange(len(key)) - group_start
        views = self._views[key] + within
        np.add.at(self._views, key, 1)
        return views
