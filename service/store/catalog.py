"""The catalog in Redis: one hash of title configs (JSON) and a version counter bumped on every write.

Workers and the learner compare `catalog_version` (one GET, batched with their other checks) and reload
titles only when it moved.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from redis.cluster import RedisCluster

from service.catalog import TitleConfig, load_catalog
from service.config import Settings
from service.store import keys
from service.store.clients import Client, make_redis

log = logging.getLogger(__name__)


def save_title(r: Client, cfg: TitleConfig) -> int:
    """Create or replace a title. Returns the new catalog version."""
    pipe = r.pipeline(transaction=True)
    pipe.hset(keys.catalog(), cfg.title_id, cfg.model_dump_json())
    pipe.incr(keys.catalog_version())
    return int(pipe.execute()[1])


def parse_stored(title_id: str, raw: bytes) -> TitleConfig:
    """A stored config; raises ValueError naming the title if it no longer validates."""
    try:
        return TitleConfig.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"stored config of title {title_id!r} is invalid: {exc}") from exc


def load_title(r: Client, title_id: str) -> TitleConfig | None:
    raw = r.hget(keys.catalog(), title_id)
    return None if raw is None else parse_stored(title_id, raw)  # type: ignore[arg-type]


def list_titles(r: Client) -> list[TitleConfig]:
    """Every title, sorted by id. A stored config that no longer validates is logged and left out."""
    out = []
    stored: dict[bytes, bytes] = r.hgetall(keys.catalog())  # type: ignore[assignment]
    for raw_id, raw in sorted(stored.items()):
        title_id = raw_id.decode()
        try:
            out.append(parse_stored(title_id, raw))
        except ValueError:
            log.exception("skipping title %r", title_id)
    return out


def title_ids(r: Client) -> list[str]:
    return sorted(t.decode() for t in r.hkeys(keys.catalog()))  # type: ignore[union-attr]


def delete_title(r: Client, title_id: str) -> bool:
    """Remove a title from the catalog (its logs and counters stay until they expire or are trimmed)."""
    pipe = r.pipeline(transaction=True)
    pipe.hdel(keys.catalog(), title_id)
    pipe.incr(keys.catalog_version())
    return bool(pipe.execute()[0])


def catalog_version(r: Client) -> int:
    raw = r.get(keys.catalog_version())
    return 0 if raw is None else int(raw)


def seed_catalog(r: Client, titles: list[TitleConfig]) -> int:
    """Add the titles that do not exist yet (existing ones are kept as they are). Returns how many."""
    if not titles:
        return 0
    pipe = r.pipeline(transaction=True)
    for cfg in titles:
        pipe.hsetnx(keys.catalog(), cfg.title_id, cfg.model_dump_json())
    added = sum(int(x) for x in pipe.execute())
    if added:
        r.incr(keys.catalog_version())
    return added


def migrate_legacy(r: Client) -> bool:
    """Rename the catalog keys of a Redis written before they carried the `{catalog}` hash tag (one
    Redis only: a cluster never had them). Returns whether anything was renamed."""
    if isinstance(r, RedisCluster):
        return False
    moved = False
    for old, new in zip(keys.legacy_catalog_keys(), (keys.catalog(), keys.catalog_version()), strict=True):
        if r.exists(old):
            moved = bool(r.renamenx(old, new)) or moved
    return moved


def seed_configured_catalog(settings: Settings) -> int:
    """Load `settings.catalog` (a YAML path) into Redis; titles already there are kept (and a catalog
    stored under the old key names is renamed first). Returns how many titles were written (0 without
    a catalog)."""
    r = make_redis(settings, for_api=False)
    try:
        if migrate_legacy(r):
            log.info("renamed the catalog keys to their {catalog}-tagged names")
        if not settings.catalog:
            return 0
        return seed_catalog(r, load_catalog(settings.catalog))
    finally:
        r.close()
