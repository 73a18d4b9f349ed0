"""Title leases: learners started without `--title` share the catalog's titles among themselves.

Every tick (half a second, or a third of the TTL if that is shorter) a learner
- answers the roll call (`rollcall.lua`: a zset of learner ids with deadlines on the Redis clock), which
  tells it how many learners are alive, n;
- renews the leases it holds (`lease_renew.lua`, a check-and-set on `ab:{t}:lease`); a lease it no
  longer holds is dropped at once;
- aims at its fair share: floor(titles / n), one more for the first (titles mod n) learners by id, so
  the shares add up to the catalog; above it, it releases its surplus (after publishing them,
  so the next owner starts from its latest snapshot); below it, it takes free titles with
  `SET lease id NX PX ttl`.

A learner that dies stops renewing: its leases expire within the TTL, its roll-call entry too, and the
others take its titles at their next tick — within TTL + one tick of its death. Two learners can still
both believe they own a title for a moment (a learner paused longer than its TTL resumes before its
next renewal); the snapshot's position check (publish.lua) then refuses the second publication, so no
event is applied twice. Leases only keep that moment rare and the load even.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable

from service.store import keys
from service.store.clients import Client, load_script, run_pipelined

log = logging.getLogger(__name__)

LEASE_TTL = 6.0  # seconds; a dead learner's titles are taken over within LEASE_TTL + one tick (6.5 s)
# A tick is a few round trips (roll call, renewals, a look for free titles), so it can be frequent: the
# takeover waits for the TTL plus at most one tick. At least three renewals fall within a TTL.
MAX_TICK = 0.5
TICK_FRACTION = 1 / 3


def learner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def fair_share(titles: int, learners: int, rank: int) -> int:
    """Titles for the learner at `rank` (0-based, by id) of `learners`: the shares add up to `titles`."""
    base, extra = divmod(titles, learners)
    return base + (1 if rank < extra else 0)


class Leases:
    """The titles one learner holds. `tick(catalog)` when `due()`; `held` is the current set."""

    def __init__(
        self,
        r: Client,
        ttl: float = LEASE_TTL,
        owner: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"lease ttl must be > 0 seconds, got {ttl!r}")
        self.r = r
        self.ttl = ttl
        self.owner = owner or learner_id()
        self._clock = clock
        self._ttl_ms = max(1, int(ttl * 1000))
        self._renew = load_script(r, "lease_renew")
        self._release = load_script(r, "lease_release")
        self._rollcall = load_script(r, "rollcall")
        self._next = 0.0
        self.held: set[str] = set()
        self.learners = 1  # alive at the last roll call

    @property
    def tick_interval(self) -> float:
        return min(MAX_TICK, self.ttl * TICK_FRACTION)

    def due(self) -> bool:
        return self._clock() >= self._next

    def tick(self, catalog: Iterable[str], publish: Callable[[set[str]], None]) -> set[str]:
        """Roll call, renew, then release or take titles toward the fair share. `publish(titles)` is
        called before titles are released. Returns the titles held now."""
        self._next = self._clock() + self.tick_interval
        titles = sorted(set(catalog))
        alive, rank = self._rollcall(keys=[keys.learners()], args=[self.owner, self._ttl_ms])
        self.learners = max(1, int(alive))
        held = sorted(self.held)
        renewed = run_pipelined(
            self.r, [(self._renew, [keys.lease(t)], [self.owner, self._ttl_ms]) for t in held]
        )
        lost = {t for t, ok in zip(held, renewed, strict=True) if not ok}
        if lost:
            log.warning("lost the lease of %s (expired or taken over)", sorted(lost))
        self.held -= lost
        gone = {t for t in self.held if t not in titles}
        share = fair_share(len(titles), self.learners, min(int(rank), self.learners - 1))
        surplus = sorted(self.held - gone)[share:] if len(self.held - gone) > share else []
        self._give_up(gone | set(surplus), publish)
        want = share - len(self.held)
        if want > 0:
            self._take(titles, want)
        return set(self.held)

    def release_all(self, publish: Callable[[set[str]], None]) -> None:
        """Leave: publish, release every lease and leave the roll call (a clean shutdown)."""
        self._give_up(set(self.held), publish)
        self._rollcall(keys=[keys.learners()], args=[self.owner, 0])

    # ------------------------------------------------------------------------------ internals
    def _give_up(self, titles: set[str], publish: Callable[[set[str]], None]) -> None:
        if not titles:
            return
        publish(titles)
        ordered = sorted(titles)
        run_pipelined(self.r, [(self._release, [keys.lease(t)], [self.owner]) for t in ordered])
        self.held -= titles
        log.info("released %d title(s) to the other learners", len(titles))

    def _take(self, titles: list[str], want: int) -> None:
        """Take up to `want` free titles, starting at a random place so learners that start together
        do not all race for the same ones."""
        free_candidates = [t for t in titles if t not in self.held]
        if not free_candidates:
            return
        start = secrets.randbelow(len(free_candidates))
        candidates = free_candidates[start:] + free_candidates[:start]
        pipe = self.r.pipeline(transaction=False)
        for t in candidates:
            pipe.exists(keys.lease(t))
        free = [t for t, n in zip(candidates, pipe.execute(), strict=True) if not n][:want]
        if not free:
            return
        pipe = self.r.pipeline(transaction=False)
        for t in free:
            pipe.set(keys.lease(t), self.owner, nx=True, px=self._ttl_ms)
        taken = {t for t, ok in zip(free, pipe.execute(), strict=True) if ok}
        if taken:
            log.info("took the lease of %s", sorted(taken))
        self.held |= taken
