"""Early updates in the served learner: decisions as they are made, accepted clicks as they arrive.

A title's variant whose policy has `early_updates` learns from two streams besides the labelled one:
its decisions (`keys.decisions_stream`: each enters the policy with reward 0, `learn_decided_batch`) and
the clicks the join accepted (`keys.clicks_stream`, written by click.lua for the first click within the
window: each adds reward 1, `learn_reward_batch`). The labelled event of such an impression is then
skipped by the learner (`takes`): its decision and its click are already in, so once the window has closed
the policy's statistics equal deadline-only learning of the same events (sums; see policies/base.py).

Which impressions a variant takes early: those decided at or after its `since` time, which is set from the
Redis clock when a policy first learns early: a new policy, a spec switched to early_updates, or a kept
policy switched on in place (a snapshot learned deadline-only before early updates became the default, or
a `reward` rule dropped: `Learner._early_in_step`), whose statistics then mix both ways exactly. Labels of
impressions decided before `since` are learned at the deadline as before. The rule looks only at
`decided_at`, which every stream's entry carries, so it judges an impression the same in all three. The
read of the decisions stream starts `START_MARGIN` seconds before `since`, so a worker whose clock runs up
to that much behind Redis's loses none of its decisions.

Deferred decisions (POST /impressions with `defer`) are not taken early: one never activated must never
be learned, so deferred impressions, decisions and clicks alike, are learned at their deadline from the
labelled stream. Titles with a graded `reward` rule do not use early updates (their default resolves
to false, an explicit true is refused): the clicks stream carries no reward value. The learner's
per-viewer cap (`throttle`) sees only labels, so it does not limit what a variant with early updates
learns from clicks as they arrive.

Crash safety: the two stream positions (snapshot fields `dpos`, `cpos`) and each variant's `since`
(`keys.snapshot_early_field`) go into the snapshot with the labelled position, in the same publish.lua
call. After a kill -9 the learner reloads all three positions with the policies that include exactly the
events before them: nothing lost, nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import orjson
from redis.cluster import RedisCluster

from service.learning.book import PolicyBook
from service.store import keys
from service.store.clients import Client
from service.store.records import LabelledEvent, StreamEntries

log = logging.getLogger(__name__)

READ_BATCH = 1000  # entries read per stream per title per step
START_MARGIN = 60.0  # seconds of decisions read before `since` (clock skew of API workers vs Redis)
DECISIONS_POS = "dpos"  # snapshot fields: positions in the decisions and clicks streams
CLICKS_POS = "cpos"


@dataclass
class _Streams:
    """One title's positions in its decisions and clicks streams (last entry read)."""

    dpos: str
    cpos: str


@dataclass
class EarlyUpdates:
    """The early-update reader of one learner: positions per title, `since` per (title, variant)."""

    r: Client
    book: PolicyBook
    positions: dict[str, _Streams] = field(default_factory=dict)
    since: dict[tuple[str, str], float] = field(default_factory=dict)
    decided: int = 0  # decisions entered early by this process
    clicked: int = 0  # clicks applied early by this process
    labels_taken: int = 0  # labelled events skipped because their decision and click were already in
    behind: bool = False  # the last step read a full batch

    # ----------------------------------------------------------------- snapshot
    def load(self, title_id: str, stored: Mapping[bytes, bytes], variants: Iterable[str]) -> None:
        """Take a title's positions and `since` times from its stored snapshot."""
        dpos, cpos = stored.get(DECISIONS_POS.encode()), stored.get(CLICKS_POS.encode())
        if dpos is not None and cpos is not None:
            self.positions[title_id] = _Streams(dpos.decode(), cpos.decode())
        for variant in variants:
            value = stored.get(keys.snapshot_early_field(variant).encode())
            if value is not None:
                self.since[(title_id, variant)] = float(value)

    def fresh(self, title_id: str, variant: str) -> None:
        """A new policy replaced the variant's: it has none of the earlier decisions, so it starts anew."""
        self.since.pop((title_id, variant), None)

    def forget(self, title_id: str) -> None:
        self.positions.pop(title_id, None)
        for key in [k for k in self.since if k[0] == title_id]:
            del self.since[key]

    def snapshot_fields(self, title_id: str) -> tuple[list[Any], list[str]]:
        """(field, value, ...) to write into the title's snapshot, and fields to delete (variants no longer
        learning early)."""
        pos = self.positions.get(title_id)
        values: list[Any] = [] if pos is None else [DECISIONS_POS, pos.dpos, CLICKS_POS, pos.cpos]
        gone = []
        for (t, variant), since in self.since.items():
            if t == title_id:
                values += [keys.snapshot_early_field(variant), repr(since)]
        for (t, variant), policy in self.book.policies.items():
            if t == title_id and not policy.early_updates and (t, variant) not in self.since:
                gone.append(keys.snapshot_early_field(variant))
        return values, gone

    # ----------------------------------------------------------------- the deadline's side
    def takes(self, event: LabelledEvent) -> bool:
        """Whether this labelled event's decision and click were learned early (so the label adds nothing).
        Counts it when so."""
        since = self.since.get((event.title_id, event.variant))
        if since is None or event.decided_at < since or event.deferred:
            return False
        self.labels_taken += 1
        return True

    # ----------------------------------------------------------------- reading
    def step(self, titles: Iterable[str], now: float | None = None) -> dict[str, set[str]]:
        """Start early learning where a policy newly has it, then read and apply new decisions and clicks.
        Returns the variants changed, per title."""
        self.behind = False
        active = self._activate(titles, now)
        if not active:
            return {}
        streams: dict[str, str] = {}
        for title_id in active:
            pos = self.positions[title_id]
            streams[keys.decisions_stream(title_id)] = pos.dpos
            streams[keys.clicks_stream(title_id)] = pos.cpos
        replies = self._xread(streams, active)
        decisions = {keys.decisions_stream(t).encode(): t for t in active}
        clicks = {keys.clicks_stream(t).encode(): t for t in active}
        changed: dict[str, set[str]] = {}
        for stream, entries in replies or []:
            if not entries:
                continue
            self.behind = self.behind or len(entries) >= READ_BATCH
            if stream in decisions:
                title_id = decisions[stream]
                changed.setdefault(title_id, set()).update(self._decisions(title_id, entries))
                self.positions[title_id].dpos = entries[-1][0].decode()
            else:
                title_id = clicks[stream]
                changed.setdefault(title_id, set()).update(self._clicks(title_id, entries))
                self.positions[title_id].cpos = entries[-1][0].decode()
        return changed

    def _xread(self, streams: dict[str, str], active: list[str]) -> list[tuple[bytes, StreamEntries]]:
        """New entries of the titles' decisions and clicks streams: one XREAD on one Redis; on a cluster
        one XREAD per title (its two streams share its slot), pipelined."""
        if not isinstance(self.r, RedisCluster):
            return cast(
                list[tuple[bytes, StreamEntries]],
                self.r.xread(streams, count=READ_BATCH),  # type: ignore[arg-type]
            )
        pipe = self.r.pipeline(transaction=False)
        for title_id in active:
            mine = {k: streams[k] for k in (keys.decisions_stream(title_id), keys.clicks_stream(title_id))}
            pipe.xread(mine, count=READ_BATCH)
        return [item for reply in pipe.execute() for item in (reply or [])]

    def _activate(self, titles: Iterable[str], now: float | None) -> list[str]:
        """Titles with an early-learning policy; a policy new to it gets `since` = now."""
        active = []
        clock: float | None = now
        for title_id in titles:
            early = [v for (t, v), p in self.book.policies.items() if t == title_id and p.early_updates]
            for key in [k for k in self.since if k[0] == title_id and k[1] not in early]:
                del self.since[key]  # switched back to deadline-only (or removed)
            if not early:
                continue
            for variant in early:
                if (title_id, variant) not in self.since:
                    if clock is None:
                        seconds, micros = self.r.time()
                        clock = seconds + micros / 1e6
                    self.since[(title_id, variant)] = clock
                    if title_id not in self.positions:
                        start = f"{max(0, int((clock - START_MARGIN) * 1000))}-0"
                        self.positions[title_id] = _Streams(start, start)
                    log.info("%s/%s learns early from %.3f", title_id, variant, clock)
            active.append(title_id)
        return active

    def _early_policy(self, title_id: str, variant: str, decided_at: float) -> Any:
        since = self.since.get((title_id, variant))
        if since is None or decided_at < since:
            return None
        return self.book.policies.get((title_id, variant))

    def _decisions(self, title_id: str, entries: StreamEntries) -> set[str]:
        rows: dict[str, tuple[list[np.ndarray], list[int]]] = {}
        for entry_id, fields in entries:
            try:
                d = orjson.loads(fields[b"json"])
                if d.get("deferred"):  # may never be shown: learned at its deadline, if activated
                    continue
                variant, decided_at, chosen = str(d["variant"]), float(d["decided_at"]), str(d["chosen"])
                policy = self._early_policy(title_id, variant, decided_at)
                if policy is None:
                    continue
                if chosen not in policy.arms:
                    self.book.skipped["unknown_arm"] += 1
                    continue
                x = policy.vectorize(dict(d["context"]))[:-1]
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("skipping decision %s of %r: %r", entry_id.decode(), title_id, exc)
                self.book.skipped["invalid"] += 1
                continue
            xs, arms = rows.setdefault(variant, ([], []))
            xs.append(x)
            arms.append(policy.arms.index(chosen))
        for variant, (xs, arms) in rows.items():
            self.book.apply_decided_batch((title_id, variant), np.array(xs), np.array(arms, dtype=np.intp))
            self.decided += len(arms)
        return set(rows)

    def _clicks(self, title_id: str, entries: StreamEntries) -> set[str]:
        rows: dict[str, tuple[list[np.ndarray], list[int]]] = {}
        for entry_id, fields in entries:
            try:
                ev = orjson.loads(fields[b"ev"])
                if ev.get("deferred"):  # its decision was not taken early either (see _decisions)
                    continue
                variant, decided_at, artwork = str(ev["variant"]), float(ev["decided_at"]), str(ev["artwork"])
                policy = self._early_policy(title_id, variant, decided_at)
                if policy is None:
                    continue
                if artwork not in policy.arms:
                    self.book.skipped["unknown_arm"] += 1
                    continue
                x = policy.vectorize(dict(ev["context"]))[:-1]
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("skipping click %s of %r: %r", entry_id.decode(), title_id, exc)
                self.book.skipped["invalid"] += 1
                continue
            xs, arms = rows.setdefault(variant, ([], []))
            xs.append(x)
            arms.append(policy.arms.index(artwork))
        for variant, (xs, arms) in rows.items():
            self.book.apply_reward_batch(
                (title_id, variant), np.array(xs), np.array(arms, dtype=np.intp), np.ones(len(arms))
            )
            self.clicked += len(arms)
        return set(rows)
