"""The Redis learner: sweep expired impressions, read labelled events, learn, publish snapshots.

Exactly once, by construction: a title's snapshot holds its policies *and* the position in the title's
labelled stream that they include, written together by one script (publish.lua). After a crash the
learner reloads the snapshot and reads on from that position, so events applied after the last snapshot
are applied again to the state that did not include them: nothing is lost, nothing counts twice. (Policies
with early updates also read the decisions and clicks streams; their positions join the snapshot the same
way: `service/learning/early.py`.) The
script only writes if the stored position is still the one this learner loaded, so an accidental second
learner on the same title cannot double-apply either (it reloads instead).

Learners scale by owning disjoint sets of titles: fixed (`titles=`), or shared by lease among the
learners alive (`leases=`, service/learning/leases.py); with neither, a learner owns the catalog.
Catalog changes are followed: new titles and variants get fresh policies, artworks are added to and
removed from live policies, and a changed policy spec or feature schema starts the variant afresh.

With `viewer_reward_cap` set, rewarded events over a viewer's cap are consumed but not learned
(`service.learning.throttle`); their count is published with the snapshot (`throttled`), exactly once
like `applied`, and shown in learner health.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from redis.cluster import RedisCluster

from policies import Policy, load_policy
from service.catalog import TitleConfig, build_policy, fit_arms, spec_fingerprint, stable_seed
from service.config import Settings
from service.join.redis_join import RedisJoin
from service.learning.book import PolicyBook, SnapshotClock
from service.learning.early import EarlyUpdates
from service.learning.leases import Leases
from service.learning.throttle import ViewerThrottle
from service.store import catalog, keys
from service.store.clients import UNAVAILABLE, Client, load_script, run_pipelined
from service.store.records import StreamEntries, parse_labelled

log = logging.getLogger(__name__)

START = "0-0"  # stream position before the first entry
READ_BATCH = 1000  # labelled events read per title per step
# Impressions labelled per expire.lua call: Redis serves nothing else while a batch runs, so a batch
# bounds the stall it causes on /impression (docs/benchmarks.md, "Constants of the learner").
EXPIRE_BATCH = 100
EXPIRE_ROUNDS = 100  # batches per title per step: a backlog is worked off over several steps
IDLE_BLOCK_MS = 100  # how long `run` waits for new events before the next sweep
# `run` starts a step at most every STEP_INTERVAL seconds unless it is behind: impressions fall due
# continuously, and a loop that stepped again as soon as a step found anything would pay four round
# trips (catalog version, due, expire, read) for every few events. Labels are due one attribution
# window after the impression; a tenth of a second more changes nothing (docs/benchmarks.md).
STEP_INTERVAL = 0.1
RETRY_AFTER_FAILURE = 1.0  # seconds `run` waits after losing Redis


@dataclass
class _Title:
    """What the learner knows about one title beyond its policies (which live in the PolicyBook)."""

    cfg: TitleConfig
    pos: str  # last stream id applied
    stored_pos: str  # 'pos' as stored in Redis ('' when there is no snapshot): the publish precondition
    consumed: int  # labelled events read (applied or skipped), ever
    applied: int  # labelled events applied, ever
    throttled: int = 0  # labelled events over their viewer's cap (consumed, not learned), ever
    versions: dict[str, int] = field(default_factory=dict)  # last published version per variant
    fingerprints: dict[str, str] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # variants changed since the last publication
    removed: set[str] = field(default_factory=set)  # variants to delete from the snapshot


class Learner:
    def __init__(
        self,
        r: Client,
        settings: Settings,
        titles: Iterable[str] | None = None,
        leases: Leases | None = None,
    ) -> None:
        if titles is not None and leases is not None:
            raise ValueError("a learner owns either fixed titles or leased ones, not both")
        self.r = r
        self.settings = settings
        self.owned = None if titles is None else frozenset(titles)
        self.leases = leases
        self.join = RedisJoin(r, settings)
        self._publish = load_script(r, "publish")
        self.applied = 0  # events applied by this process
        self.published = 0  # title snapshots published by this process
        self.swept = 0  # reward-0 labels emitted by this process's sweeps
        self.behind = False  # the last step left work it could have done (a full read or sweep)
        self.reset()

    def reset(self) -> None:
        """Forget everything in memory; the next step reloads the published snapshots."""
        self.book = PolicyBook()
        self.throttle = ViewerThrottle(self.settings.viewer_reward_cap)
        self.early = EarlyUpdates(self.r, self.book)  # decisions and clicks for early-updating policies
        self._titles: dict[str, _Title] = {}
        self._catalog_version: int | None = None
        self._clock = SnapshotClock(self.settings.snapshot_interval)

    @property
    def titles(self) -> list[str]:
        return sorted(self._titles)

    # ----------------------------------------------------------------- the loop
    def step(self, now: float | None = None, block_ms: int = 0) -> int:
        """Follow the catalog, sweep expired impressions (as of `now`, default the Redis clock), read and
        apply labelled events (waiting up to `block_ms` for some), and publish if a snapshot is due.
        Returns the number of labelled events read."""
        if self.leases is not None and self.leases.due():
            self._follow_leases()
        self.sync_catalog()
        self.behind = False
        for title_id in self._titles:
            emitted, behind = self.join.sweep(title_id, now, limit=EXPIRE_BATCH, max_rounds=EXPIRE_ROUNDS)
            self.swept += emitted
            self.behind = self.behind or behind
        n = self._read_and_apply(block_ms)
        for title_id, variants in self.early.step(list(self._titles), now).items():
            self._titles[title_id].dirty.update(variants)
        self.behind = self.behind or self.early.behind
        if self._clock.due(time.monotonic()):
            self.publish()
        return n

    def run(self, stop: threading.Event) -> None:
        """Step until `stop` is set, then publish once more. Survives Redis outages: after a failure it
        waits, drops its in-memory state and resumes from the published snapshots."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                n = self.step(block_ms=0 if not self._titles else IDLE_BLOCK_MS)
                if not self._titles:
                    stop.wait(IDLE_BLOCK_MS / 1000)
                elif n and not self.behind:
                    stop.wait(STEP_INTERVAL - (time.monotonic() - started))  # see STEP_INTERVAL
            except UNAVAILABLE as exc:
                log.warning("learner lost Redis (%s); resuming from the last snapshot", exc)
                self.reset()
                stop.wait(RETRY_AFTER_FAILURE)
        try:
            if self.leases is not None:
                self.leases.release_all(self._publish_titles)  # publishes, then hands the titles on
            else:
                self.publish()
        except UNAVAILABLE as exc:
            log.warning("final snapshot not published, Redis unavailable: %s", exc)

    # ----------------------------------------------------------------- leases
    def _follow_leases(self) -> None:
        """Renew, release and take title leases; a title this learner no longer holds is forgotten at
        once, a new one is loaded from its snapshot by the catalog sync that follows."""
        assert self.leases is not None
        before = set(self.leases.held)
        held = self.leases.tick(catalog.title_ids(self.r), self._publish_titles)
        for title_id in [t for t in self._titles if t not in held]:
            self._forget(title_id)
        if held != before:
            self._catalog_version = None  # re-read the catalog for the titles taken

    def _publish_titles(self, titles: set[str]) -> None:
        self.publish(only=titles)

    def _owns(self, title_id: str) -> bool:
        if self.leases is not None:
            return title_id in self.leases.held
        return self.owned is None or title_id in self.owned

    # ----------------------------------------------------------------- catalog
    def sync_catalog(self) -> None:
        version = catalog.catalog_version(self.r)
        if version == self._catalog_version:
            return
        configs = {
            cfg.title_id: cfg
            for cfg in catalog.list_titles(self.r)
            if self._owns(cfg.title_id)
        }
        for title_id in [t for t in self._titles if t not in configs]:
            self._forget(title_id)
            log.info("title %r left the catalog; its snapshot stays as published", title_id)
        for title_id, cfg in configs.items():
            state = self._titles.get(title_id)
            if state is None:
                self._load(cfg)
            elif cfg != state.cfg:
                self._reconcile(state, cfg)
        self._catalog_version = version

    def _forget(self, title_id: str) -> None:
        state = self._titles.pop(title_id)
        self.throttle.forget(title_id)
        self.early.forget(title_id)
        for variant in state.fingerprints:
            self.book.policies.pop((title_id, variant), None)

    def _load(self, cfg: TitleConfig) -> None:
        """Start a title from its published snapshot (or from nothing)."""
        title_id = cfg.title_id
        stored: dict[bytes, bytes] = self.r.hgetall(keys.snapshot(title_id))  # type: ignore[assignment]
        pos = stored.get(b"pos", b"").decode()
        state = _Title(
            cfg=cfg,
            pos=pos or START,
            stored_pos=pos,
            consumed=int(stored.get(b"consumed", 0)),
            applied=int(stored.get(b"applied", 0)),
            throttled=int(stored.get(b"throttled", 0)),
        )
        for variant in self._stored_variants(stored):
            version = stored.get(keys.snapshot_version_field(variant).encode())
            state.versions[variant] = int(version) if version is not None else 0
        names = {v.name for v in cfg.variants}
        state.removed = set(state.versions) - names
        self.early.load(title_id, stored, names)
        for variant in names:
            fingerprint = spec_fingerprint(cfg, variant)
            data = stored.get(keys.snapshot_bytes_field(variant).encode())
            spec = stored.get(keys.snapshot_spec_field(variant).encode())
            policy = None
            if data is not None and spec is not None and spec.decode() == fingerprint:
                try:
                    policy = load_policy(data)
                except ValueError:
                    log.exception("snapshot of %s/%s does not load; starting afresh", title_id, variant)
            if policy is not None:
                policy = self._early_in_step(cfg, variant, policy, state)
            if policy is None:
                policy = build_policy(cfg, variant, seed=stable_seed(title_id, variant))
                state.dirty.add(variant)
                self.early.fresh(title_id, variant)
            elif fit_arms(policy, cfg):
                state.dirty.add(variant)
            self.book.policies[(title_id, variant)] = policy
            state.fingerprints[variant] = fingerprint
        self._titles[title_id] = state

    def _early_in_step(self, cfg: TitleConfig, variant: str, policy: Policy, state: _Title) -> Policy | None:
        """A kept policy (its spec unchanged) with `early_updates` as the config now resolves it, or None
        when the variant must start afresh. Switching on keeps the statistics (`start_early_updates`; the
        early reader takes decisions from `since` = now, labels of earlier ones come at the deadline): a
        snapshot from before early updates became the default, or a `reward` rule dropped. Switching off
        (a `reward` rule added) cannot keep them: decisions entered early await their outcomes, and
        deadline-only learning of their labels would count them twice."""
        want = build_policy(cfg, variant, seed=0).early_updates
        if want == policy.early_updates:
            return policy
        if not want:
            log.info("%s/%s stops learning early; starting afresh", cfg.title_id, variant)
            return None
        policy.start_early_updates()
        state.dirty.add(variant)
        log.info("%s/%s switches to early updates, keeping its statistics", cfg.title_id, variant)
        return policy

    @staticmethod
    def _stored_variants(stored: dict[bytes, bytes]) -> list[str]:
        prefix = keys.snapshot_version_field("")
        return [f.decode()[len(prefix) :] for f in stored if f.decode().startswith(prefix)]

    def _reconcile(self, state: _Title, cfg: TitleConfig) -> None:
        """Bring a live title in step with its new config."""
        title_id = cfg.title_id
        names = {v.name for v in cfg.variants}
        for variant in list(state.fingerprints):
            if variant not in names:
                self.book.policies.pop((title_id, variant), None)
                del state.fingerprints[variant]
                state.dirty.discard(variant)
                state.removed.add(variant)
        for variant in names:
            fingerprint = spec_fingerprint(cfg, variant)
            policy = self.book.policies.get((title_id, variant))
            if policy is not None and state.fingerprints.get(variant) == fingerprint:
                policy = self._early_in_step(cfg, variant, policy, state)
            if policy is None or state.fingerprints.get(variant) != fingerprint:
                fresh = build_policy(cfg, variant, seed=stable_seed(title_id, variant))
                self.book.policies[(title_id, variant)] = fresh
                self.early.fresh(title_id, variant)
                state.fingerprints[variant] = fingerprint
                state.dirty.add(variant)
                state.removed.discard(variant)
            elif fit_arms(policy, cfg):
                state.dirty.add(variant)
        state.cfg = cfg

    # ----------------------------------------------------------------- learning
    def _read_and_apply(self, block_ms: int) -> int:
        if not self._titles:
            return 0
        by_stream = {keys.labelled_stream(t).encode(): t for t in self._titles}
        replies = self._xread(block_ms)
        read = 0
        for stream, entries in replies or []:
            title_id = by_stream[stream]
            state = self._titles[title_id]
            if len(entries) >= READ_BATCH:
                self.behind = True
            for entry_id, fields in entries:
                read += 1
                state.consumed += 1
                state.pos = entry_id.decode()
                try:
                    event = parse_labelled(title_id, fields)
                except ValueError:
                    log.exception("skipping labelled event %s of %r", state.pos, title_id)
                    self.book.skipped["invalid"] += 1
                    continue
                if self.early.takes(event):  # its decision and click were learned early
                    state.applied += 1
                    self.applied += 1
                    continue
                if not self.throttle.admit(event):
                    state.throttled += 1
                    continue
                if self.book.apply(event):
                    state.applied += 1
                    self.applied += 1
                    state.dirty.add(event.variant)
        return read

    def _xread(self, block_ms: int) -> list[tuple[bytes, StreamEntries]]:
        """New labelled events of every title: one multi-stream XREAD on one Redis; on a cluster (where
        one command cannot span slots) one XREAD per title, pipelined — a round trip per shard, sent to
        the shards together — then a pause of `block_ms` if nothing came."""
        if not isinstance(self.r, RedisCluster):
            streams = {keys.labelled_stream(t): s.pos for t, s in self._titles.items()}
            return cast(
                list[tuple[bytes, StreamEntries]],
                self.r.xread(streams, count=READ_BATCH, block=block_ms or None),  # type: ignore[arg-type]
            )
        pipe = self.r.pipeline(transaction=False)
        for title_id, state in self._titles.items():
            pipe.xread({keys.labelled_stream(title_id): state.pos}, count=READ_BATCH)
        replies = [item for reply in pipe.execute() for item in (reply or [])]
        if not replies and block_ms:
            time.sleep(block_ms / 1000)
        return cast(list[tuple[bytes, StreamEntries]], replies)

    # ----------------------------------------------------------------- publishing
    def publish(self, only: set[str] | None = None) -> int:
        """Write every title's snapshot (position, counters, changed policies) atomically per title
        (only the titles in `only`, if given). Returns how many titles were written."""
        if not self._titles:
            return 0
        calls = []
        planned: list[tuple[str, dict[str, int]]] = []
        for title_id, state in self._titles.items():
            if only is not None and title_id not in only:
                continue
            new_versions = {v: state.versions.get(v, 0) + 1 for v in state.dirty}
            values: list[str | bytes | int | float] = [
                "pos", state.pos, "consumed", state.consumed, "applied", state.applied,
                "throttled", state.throttled, "published_at", repr(time.time()),
            ]  # fmt: skip
            for variant, version in new_versions.items():
                values += [
                    keys.snapshot_bytes_field(variant), self.book.snapshot((title_id, variant)),
                    keys.snapshot_version_field(variant), version,
                    keys.snapshot_spec_field(variant), state.fingerprints[variant],
                ]  # fmt: skip
            gone = [
                f(v)
                for v in state.removed
                for f in (keys.snapshot_bytes_field, keys.snapshot_version_field, keys.snapshot_spec_field)
            ]
            early_values, early_gone = self.early.snapshot_fields(title_id)
            values += early_values
            gone += early_gone
            args = [state.stored_pos, len(gone), *gone, *values]
            calls.append((self._publish, [keys.snapshot(title_id)], args))
            planned.append((title_id, new_versions))
        written = 0
        for (title_id, new_versions), ok in zip(planned, run_pipelined(self.r, calls), strict=True):
            state = self._titles[title_id]
            if not ok:
                log.warning("snapshot of %r moved (a second learner?); reloading it", title_id)
                self._forget(title_id)
                self._load(state.cfg)
                continue
            state.stored_pos = state.pos
            state.versions.update(new_versions)
            for variant in state.removed:
                state.versions.pop(variant, None)
            state.dirty.clear()
            state.removed.clear()
            written += 1
        self.published += written
        return written
