"""The dashboard's off-policy panel: each variant's current policy evaluated on the explore variant's logs.

The explore variant (the one whose policy is `uniform`, preferring one named "explore") logs viewers
whose artwork was drawn with a known probability. For each other variant we take its published policy
snapshot (what its workers serve, or the fresh policy they serve before the learner has published), ask
it how likely it was to show the logged artwork to each logged viewer, and weight the logged rewards by
that probability over the logged propensity: IPS and self-normalized IPS (SNIPS) with 95% intervals,
from `service.reporting.ope` — the same estimators the offline tools use.

Input is the title's labelled stream (each entry carries the variant, artwork, context, propensity and
reward: everything IPS needs), newest `limit` entries, so the cost is bounded whatever the traffic.
Explore gets a small share of traffic, so the estimates rest on about share x limit events; the panel
shows how many. Context features the title no longer declares are ignored (the target policy cannot see
them); missing ones count as 0, as at decision time. Artworks removed since have target probability 0.

`OffPolicyPanel` caches each title's rows for `ttl` seconds and keeps the explore events it has read, so
a refresh reads only the labelled events added since (see its docstring for the costs).

The panel also tunes (`tuning_row`): the policy of the first variant whose policy has a grid in TUNE_GRIDS
is evaluated offline at every grid setting on the explore logs (`service.reporting.tuning`, the same code
as `artbandit tune`: DR with its interval, Bonferroni over the grid) and a setting is shown as
recommended only when its lower bound beats the explore logs' observed click rate. Cached TUNE_TTL seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from policies import Policy, load_policy
from service.catalog import TitleConfig, build_policy, fit_arms, reseed, spec_fingerprint, stable_seed
from service.reporting import ope
from service.reporting.tuning import tune
from service.store import keys
from service.store.clients import Client
from service.store.records import LabelledEvent, StreamEntries, parse_labelled

log = logging.getLogger(__name__)

EXPLORE_POLICY = "uniform"
EXPLORE_NAME = "explore"
DEFAULT_LIMIT = 20_000  # newest labelled events read per title (all variants)
DEFAULT_TTL = 30.0  # seconds a title's rows are reused
MIN_EVENTS = 2  # the estimators need at least this many logged events
# the grids the panel tries per policy (its other parameters stay as the variant configures them)
TUNE_GRIDS: dict[str, dict[str, list[Any]]] = {
    "linucb": {"alpha": [0.1, 0.3, 1.0, 3.0]},
    "linear_ts": {"v": [0.1, 0.3, 1.0, 3.0]},
    "epsilon_greedy": {"epsilon": [0.01, 0.05, 0.1, 0.2]},
}
TUNE_TTL = 600.0  # seconds a title's tuning result is reused (a grid of progressive validations)
TUNE_BLOCK = 50  # events between the candidates' updates while tuning (bounds the cost)
MIN_TUNE_EVENTS = 200  # explore events needed before the panel tunes


def explore_variant(cfg: TitleConfig) -> str | None:
    """The variant whose logs are evaluated: a uniform one (the one named "explore" if several), else a
    variant named "explore" (its logged propensities make any logging policy usable); None if neither."""
    uniform = [v.name for v in cfg.variants if v.policy.name == EXPLORE_POLICY]
    if uniform:
        return EXPLORE_NAME if EXPLORE_NAME in uniform else uniform[0]
    return EXPLORE_NAME if any(v.name == EXPLORE_NAME for v in cfg.variants) else None


class ExploreLog:
    """One variant's labelled events among a title's newest `limit` labelled-stream entries, kept current
    by reading only the entries added since the previous `update` (the first reads the newest `limit`).
    Not thread-safe: `OffPolicyPanel` serializes its use."""

    def __init__(self, title_id: str, variant: str, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        self.title_id, self.variant, self.limit = title_id, variant, limit
        self._last = ""  # id of the newest entry read
        self._read = 0  # entries read so far, every variant
        self._events: deque[tuple[int, LabelledEvent]] = deque()  # (ordinal among entries read, event)

    def update(self, r: Client) -> list[LabelledEvent]:
        """Read what is new; return the variant's events in the window, oldest first."""
        key = keys.labelled_stream(self.title_id)
        entries: StreamEntries = []
        if self._last:
            entries = cast(StreamEntries, r.xrange(key, min="(" + self._last, count=self.limit))
        if not self._last or len(entries) == self.limit:  # first read, or a whole window is new
            entries = cast(StreamEntries, r.xrevrange(key, count=self.limit))[::-1]
            self._events.clear()
        for entry_id, fields in entries:
            self._read += 1
            self._last = entry_id.decode()
            try:
                event = parse_labelled(self.title_id, fields)
            except ValueError:
                log.exception("off-policy panel: skipping labelled event %s of %r", self._last, self.title_id)
                continue
            if event.variant == self.variant:
                self._events.append((self._read, event))
        while self._events and self._events[0][0] <= self._read - self.limit:
            self._events.popleft()
        return [event for _, event in self._events]


def logged_events(
    r: Client, title_id: str, variant: str, limit: int = DEFAULT_LIMIT
) -> list[LabelledEvent]:
    """The labelled events of `variant` among the title's newest `limit` labelled events, oldest first.
    Malformed entries are logged and left out."""
    return ExploreLog(title_id, variant, limit).update(r)


def published_policy(r: Client, cfg: TitleConfig, variant: str) -> tuple[Policy, int]:
    """A private copy of the policy the title's workers serve for `variant`, and its version: the published
    snapshot if it was made for the current spec (arms fitted to the current artworks), else the fresh
    policy served before the learner publishes (version 0). A snapshot that does not load is logged and
    treated as unpublished."""
    data, version, spec = cast(
        list[bytes | None],
        r.hmget(
            keys.snapshot(cfg.title_id),
            [
                keys.snapshot_bytes_field(variant),
                keys.snapshot_version_field(variant),
                keys.snapshot_spec_field(variant),
            ],
        ),
    )
    seed = stable_seed(cfg.title_id, variant)
    if data is not None and version is not None and spec is not None:
        if spec.decode() == spec_fingerprint(cfg, variant):
            try:
                policy = load_policy(data)
            except ValueError:
                log.exception("snapshot %s of %s/%s does not load", version.decode(), cfg.title_id, variant)
            else:
                reseed(policy, seed)  # Monte Carlo policies (linear_ts) estimate reproducibly
                fit_arms(policy, cfg)
                return policy, int(version)
    return build_policy(cfg, variant, seed=seed), 0


def target_probabilities(policy: Policy, data: ope.LoggedData) -> np.ndarray:
    """(n,) the policy's probability of showing each event's logged artwork to that event's viewer (0 for
    an artwork the policy no longer has). The policy must use `data.features`, in that order."""
    if list(policy.features) != list(data.features):
        raise ValueError(f"policy features {policy.features} differ from the data's {list(data.features)}")
    if len(data) == 0:
        return np.zeros(0)
    p = policy.decide_batch(data.contexts).probabilities  # (n, K); the draws are discarded
    column = {arm: j for j, arm in enumerate(policy.arms)}
    cols = np.array([column.get(a, -1) for a in data.artwork], dtype=np.intp)
    out = np.where(cols >= 0, p[np.arange(len(cols)), np.maximum(cols, 0)], 0.0)
    return np.asarray(out, dtype=float)


def _interval(e: ope.Estimate) -> list[float] | None:
    """The estimate's 95% interval intersected with [0, 1], where a CTR lies (the normal approximation
    reaches below 0 when clicks are few); None when the estimator has none (e.g. SNIPS of a target that
    puts no weight on any logged artwork)."""
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return None
    return [min(max(e.low, 0.0), 1.0), min(max(e.high, 0.0), 1.0)]


def estimate_row(variant: str, version: int, data: ope.LoggedData, target: np.ndarray) -> dict[str, Any]:
    """One panel row: {"variant", "version", "n", "ips", "ips_ci", "snips", "snips_ci", "ess"}; the
    estimates are None with fewer than MIN_EVENTS logged events."""
    row: dict[str, Any] = {
        "variant": variant, "version": version, "n": len(data),
        "ips": None, "ips_ci": None, "snips": None, "snips_ci": None, "ess": None,
    }  # fmt: skip
    if len(data) < MIN_EVENTS:
        return row
    ips = ope.ips(data.reward, data.propensity, target)
    snips = ope.snips(data.reward, data.propensity, target)
    row.update(
        ips=ips.value, ips_ci=_interval(ips), snips=snips.value, snips_ci=_interval(snips), ess=ips.ess
    )
    return row


def estimate_rows(
    r: Client, cfg: TitleConfig, explore: str, events: Sequence[LabelledEvent]
) -> list[dict[str, Any]]:
    """`estimate_row` of every variant but `explore`, in catalog order, on `explore`'s logged events."""
    data = ope.LoggedData.from_events(events, cfg.features)
    rows = []
    for v in cfg.variants:
        if v.name == explore:
            continue
        policy, version = published_policy(r, cfg, v.name)
        rows.append(estimate_row(v.name, version, data, target_probabilities(policy, data)))
    return rows


def offpolicy_rows(r: Client, cfg: TitleConfig, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The panel's rows for one title, computed from scratch; empty when it has no explore variant."""
    explore = explore_variant(cfg)
    if explore is None:
        return []
    return estimate_rows(r, cfg, explore, logged_events(r, cfg.title_id, explore, limit))


def tuning_row(cfg: TitleConfig, explore: str, events: Sequence[LabelledEvent]) -> dict[str, Any] | None:
    """The best setting on `explore`'s logged events of the first variant whose policy has a grid, with the
    gate; None when no variant has one. {"variant", "policy", "grid", "n", "logged_value", "confidence",
    "settings": [...], "recommended": {...} | None, "message": str | None}."""
    variant = next(
        (v for v in cfg.variants if v.name != explore and v.policy.name in TUNE_GRIDS), None
    )
    if variant is None:
        return None
    grid = TUNE_GRIDS[variant.policy.name]
    out: dict[str, Any] = {
        "variant": variant.name, "policy": variant.policy.name, "grid": grid, "n": len(events),
        "logged_value": None, "confidence": None, "settings": [], "recommended": None, "message": None,
    }  # fmt: skip
    if len(events) < MIN_TUNE_EVENTS:
        out["message"] = f"waiting for {MIN_TUNE_EVENTS} explore events (has {len(events)})"
        return out
    fixed = {k: v for k, v in variant.policy.params.items() if k not in grid}
    data = ope.LoggedData.from_events(events, cfg.features)
    try:
        result = tune(
            data, variant.policy.name, grid, block=TUNE_BLOCK, seed=stable_seed(cfg.title_id, explore),
            fixed=fixed,
        )  # fmt: skip
    except ValueError as exc:  # e.g. an artwork the explore logs never showed: say so on the page
        log.warning("off-policy tuning of %s/%s: %s", cfg.title_id, variant.name, exc)
        out["message"] = str(exc)
        return out
    doc = result.as_json()
    out.update({k: doc[k] for k in ("n", "logged_value", "confidence", "settings", "recommended")})
    return out


@dataclass
class _Cached:
    cfg: TitleConfig
    until: float
    rows: list[dict[str, Any]]


class OffPolicyPanel:
    """Per-process cache of the panel: a title's rows are recomputed after `ttl` seconds or when its
    config changes, from an `ExploreLog` that reads only the labelled events added since the last time
    (docs/benchmarks.md, "The off-policy panel's reads").
    One lock serializes the computations, which also keeps requests of the
    same title from computing it twice."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        limit: int = DEFAULT_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl >= 0:
            raise ValueError(f"ttl must be >= 0 seconds, got {ttl!r}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        self.ttl, self.limit, self._clock = ttl, limit, clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._logs: dict[str, ExploreLog] = {}
        self._tuning: dict[str, tuple[TitleConfig, float, dict[str, Any] | None]] = {}

    def rows(self, r: Client, cfg: TitleConfig) -> list[dict[str, Any]]:
        with self._lock:
            now = self._clock()
            held = self._cache.get(cfg.title_id)
            if held is not None and held.until > now and held.cfg == cfg:
                return held.rows
            explore = explore_variant(cfg)
            rows: list[dict[str, Any]] = []
            if explore is not None:
                rows = estimate_rows(r, cfg, explore, self._explore_log(cfg, explore).update(r))
            self._cache[cfg.title_id] = _Cached(cfg, now + self.ttl, rows)
            return rows

    def _explore_log(self, cfg: TitleConfig, explore: str) -> ExploreLog:
        explore_log = self._logs.get(cfg.title_id)
        if explore_log is None or explore_log.variant != explore:
            explore_log = self._logs[cfg.title_id] = ExploreLog(cfg.title_id, explore, self.limit)
        return explore_log

    def tuning(self, r: Client, cfg: TitleConfig) -> dict[str, Any] | None:
        """`tuning_row` on the title's explore events, recomputed after TUNE_TTL s or a config change."""
        with self._lock:
            now = self._clock()
            held = self._tuning.get(cfg.title_id)
            if held is not None and held[1] > now and held[0] == cfg:
                return held[2]
            explore = explore_variant(cfg)
            row = None
            if explore is not None:
                row = tuning_row(cfg, explore, self._explore_log(cfg, explore).update(r))
            self._tuning[cfg.title_id] = (cfg, now + TUNE_TTL, row)
            return row

    def forget(self, title_id: str | None = None) -> None:
        """Drop one title's cached rows and events (every title's with None)."""
        with self._lock:
            if title_id is None:
                self._cache.clear()
                self._logs.clear()
                self._tuning.clear()
            else:
                self._cache.pop(title_id, None)
                self._logs.pop(title_id, None)
                self._tuning.pop(title_id, None)
