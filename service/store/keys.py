"""Every Redis key name, and the impression id format. Nothing else spells a key.

All keys of one title carry the hash tag `{title_id}`, so Redis Cluster keeps a title on one shard and
every Lua script of the join touches a single slot. The catalog and one global counter are the only keys
outside a title. The catalog hash and its version share the hash tag `{catalog}` so one transaction
writes both on a cluster too (they live on the one shard that slot maps to; docs/architecture.md,
"Redis Cluster"). Learner leases are per title (`ab:{t}:lease`); the learners' roll call is global.

| key | type | lifetime |
|---|---|---|
| `ab:{catalog}` | hash title_id -> TitleConfig JSON | permanent |
| `ab:{catalog}:version` | integer, bumped on every catalog write | permanent |
| `ab:unknown_clicks` | integer: clicks whose id does not parse | permanent |
| `ab:learners` | zset learner id -> lease deadline (ms): the learners alive | members expire with leases |
| `ab:{t}:lease` | string: id of the learner that owns the title | PX lease TTL, renewed |
| `ab:{t}:decisions` | stream of decision records | trimmed to ~retention_events |
| `ab:{t}:labelled` | stream of labelled events (the learner's input) | trimmed to ~retention_events |
| `ab:{t}:clicks` | stream of accepted clicks, read by early updates | trimmed to ~retention_events |
| `ab:{t}:pending` | zset impression id -> deadline (deferred: activation deadline) | until labelled |
| `ab:{t}:imp:<minute>~<token>` | hash: one impression for the join | TTL window + retention |
| `ab:{t}:join` | hash of join counters | permanent, fixed size |
| `ab:{t}:totals` | hash `i|v|a`, `c|v|a`; `r|v|a`, `n|v|a` (reward sum, labels) | permanent, fixed size |
| `ab:{t}:segments` | hash `i|variant|segment|artwork`, `c|...` (service/segments.py bounds it) | permanent |
| `ab:{t}:min:<minute>` | same fields, one epoch minute | TTL window + retention + 2 min |
| `ab:{t}:users:<variant>` | HyperLogLog of distinct viewers of a variant | permanent, ≤ 12 KB each |
| `ab:{t}:snapshot` | hash: learner position, counters, per-variant model bytes/version/spec | permanent |
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

PREFIX = "ab"

# Impression ids: "<title_id>~<decision minute>~<16 hex>". The title routes a click to the title's keys
# (no global lookup); the minute routes the click's counter to the decision minute's counter key.
_IMPRESSION_ID = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,63})~([0-9]{1,12})~([0-9a-f]{16})")
MAX_IMPRESSION_ID_LENGTH = 96


@dataclass(frozen=True, slots=True)
class ImpressionRef:
    """A parsed impression id."""

    title_id: str
    minute: int
    token: str

    @property
    def impression_id(self) -> str:
        return f"{self.title_id}~{self.minute}~{self.token}"


def new_impression_id(title_id: str, decided_at: float) -> str:
    """A fresh impression id for a decision of `title_id` at `decided_at` (epoch seconds)."""
    return new_impression(title_id, decided_at)[0]


def new_impression(title_id: str, decided_at: float) -> tuple[str, ImpressionRef]:
    """A fresh impression id and its parts (the hot path needs both and need not parse its own id)."""
    ref = ImpressionRef(title_id, epoch_minute(decided_at), secrets.token_hex(8))
    return f"{title_id}~{ref.minute}~{ref.token}", ref


def parse_impression_id(impression_id: object) -> ImpressionRef | None:
    """The parts of an impression id, or None if it is malformed (never raises)."""
    if not isinstance(impression_id, str) or len(impression_id) > MAX_IMPRESSION_ID_LENGTH:
        return None
    m = _IMPRESSION_ID.fullmatch(impression_id)
    if m is None:
        return None
    return ImpressionRef(m.group(1), int(m.group(2)), m.group(3))


def epoch_minute(t: float) -> int:
    return int(t // 60)


def _t(title_id: str) -> str:
    return f"{PREFIX}:{{{title_id}}}"


# ----------------------------------------------------------------- global
def catalog() -> str:
    return f"{PREFIX}:{{catalog}}"


def catalog_version() -> str:
    return f"{PREFIX}:{{catalog}}:version"


def legacy_catalog_keys() -> tuple[str, str]:
    """The catalog's names before they carried a hash tag: renamed once by `catalog.migrate_legacy`."""
    return f"{PREFIX}:catalog", f"{PREFIX}:catalog:version"


def learners() -> str:
    return f"{PREFIX}:learners"


def unknown_clicks() -> str:
    return f"{PREFIX}:unknown_clicks"


# ----------------------------------------------------------------- per title
def decisions_stream(title_id: str) -> str:
    return f"{_t(title_id)}:decisions"


def labelled_stream(title_id: str) -> str:
    return f"{_t(title_id)}:labelled"


def clicks_stream(title_id: str) -> str:
    """The clicks the join accepted (each the first of its impression, within the window), as they come:
    fields `id`, `at` (click time) and `ev` (the impression's label JSON). Learners with early updates
    read it; the labelled stream stays the deadline's record."""
    return f"{_t(title_id)}:clicks"


def pending(title_id: str) -> str:
    return f"{_t(title_id)}:pending"


def impression(ref: ImpressionRef) -> str:
    return f"{_t(ref.title_id)}:imp:{ref.minute}~{ref.token}"


def join_counters(title_id: str) -> str:
    return f"{_t(title_id)}:join"


def totals(title_id: str) -> str:
    return f"{_t(title_id)}:totals"


def segment_counters(title_id: str) -> str:
    """Impressions and clicks per variant × taste segment × artwork (the dashboard's segment heatmap)."""
    return f"{_t(title_id)}:segments"


def minute_counters(title_id: str, minute: int) -> str:
    return f"{_t(title_id)}:min:{minute}"


def variant_users(title_id: str, variant: str) -> str:
    """HyperLogLog of the distinct viewers served by one variant (the unit of the sample-ratio check)."""
    return f"{_t(title_id)}:users:{variant}"


def snapshot(title_id: str) -> str:
    return f"{_t(title_id)}:snapshot"


def lease(title_id: str) -> str:
    return f"{_t(title_id)}:lease"


# ----------------------------------------------------------------- hash fields
def impressions_field(variant: str, artwork_id: str) -> str:
    """Counter field in `totals` / `minute_counters` (the Lua scripts build the same `i|v|a` form)."""
    return f"i|{variant}|{artwork_id}"


def clicks_field(variant: str, artwork_id: str) -> str:
    return f"c|{variant}|{artwork_id}"


def segment_impressions_field(variant: str, segment: str, artwork_id: str) -> str:
    """Counter field in `segment_counters`. Variant and artwork ids never hold '|'; a segment may (it can be
    a feature name), so readers split off the variant first and the artwork last."""
    return f"i|{variant}|{segment}|{artwork_id}"


def segment_clicks_field(variant: str, segment: str, artwork_id: str) -> str:
    return f"c|{variant}|{segment}|{artwork_id}"


def reward_sum_field(variant: str, artwork_id: str) -> str:
    """Sum of the labels (clipped rewards) of an artwork's labelled impressions, in `totals`, for titles
    with a `reward` config (the Lua scripts build it as 'r' .. the clicks field without its 'c')."""
    return f"r|{variant}|{artwork_id}"


def labels_field(variant: str, artwork_id: str) -> str:
    """Number of an artwork's labelled impressions, in `totals` (beside `reward_sum_field`)."""
    return f"n|{variant}|{artwork_id}"


def snapshot_bytes_field(variant: str) -> str:
    return f"bytes|{variant}"


def snapshot_version_field(variant: str) -> str:
    return f"version|{variant}"


def snapshot_spec_field(variant: str) -> str:
    return f"spec|{variant}"


def snapshot_early_field(variant: str) -> str:
    """Epoch seconds from which the variant's policy takes decisions and clicks early (its labels from then
    on are already in); absent when it learns at the deadline only."""
    return f"early|{variant}"
