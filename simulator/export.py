"""`artbandit export`: the service's logged decisions with their outcomes, as Parquet/CSV or DSJSON.

Decisions come from each title's decisions stream (field `json`, a `service.store.records.DecisionRecord`),
outcomes from its labelled stream (`id`, `r`, `at`); they are matched by impression id (= EventId).
Decisions still waiting for their label (inside the attribution window) are left out. Key names come
from `service.store.keys`; Redis is imported only here, so the rest of the simulator runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.logs import LogsError, records_to_data, write_dsjson, write_flat


def title_records(r: Any, title_id: str) -> tuple[list[dict[str, Any]], int]:
    """(records with outcomes for `dsjson_line`, number of decisions still pending) for one title."""
    from service.store import keys
    from service.store.records import DecisionRecord, stream_entries

    outcome: dict[str, float] = {}
    for _, fields in stream_entries(r, keys.labelled_stream(title_id)):
        outcome[fields[b"id"].decode()] = float(fields[b"r"])
    records, pending = [], 0
    for entry_id, fields in stream_entries(r, keys.decisions_stream(title_id)):
        try:
            d = DecisionRecord.from_json(fields[b"json"])
        except (KeyError, ValueError, TypeError) as exc:
            raise LogsError(
                f"title {title_id!r}: decision entry {entry_id.decode()} is malformed: {exc}"
            ) from exc
        reward = outcome.get(d.event_id)
        if reward is None:
            pending += 1
            continue
        records.append(record_from_decision(d, reward))
    return records, pending


def record_from_decision(d: Any, reward: float | None) -> dict[str, Any]:
    """A `service.store.records.DecisionRecord` and its reward -> the record `simulator.logs` writes."""
    from service.store.records import iso_timestamp

    return {
        "event_id": d.event_id,
        "timestamp": iso_timestamp(d.decided_at),
        "title_id": d.title_id,
        "variant": d.variant,
        "user_id": d.user_id,
        "context": dict(d.context),
        "artworks": list(d.artworks),
        "probabilities": list(d.probabilities),
        "artwork_id": d.chosen,
        "propensity": d.propensity,
        "model_version": d.model_version,
        "reward": reward,
    }


def write_records(records: Sequence[dict[str, Any]], out: str | Path) -> int:
    out = Path(out)
    if out.suffix in (".dsjson", ".jsonl", ".json"):
        return write_dsjson(records, out)
    if out.suffix in (".parquet", ".csv"):
        data = records_to_data(records)
        write_flat(data, out)
        return len(data)
    raise ValueError(f"--out must end in .parquet, .csv, .dsjson, .jsonl or .json, got {out.name!r}")


def export_from_redis(redis_url: str, out: str | Path, titles: Sequence[str] | None = None) -> int:
    """Write every title's (or `titles`') decisions with outcomes to `out`; returns how many."""
    from service.store import catalog
    from service.store.clients import connect

    r = connect(redis_url)  # one Redis or a cluster, whichever the URL names
    try:
        chosen = list(titles) if titles else catalog.title_ids(r)
        records: list[dict[str, Any]] = []
        for title_id in chosen:
            recs, _ = title_records(r, title_id)
            records.extend(recs)
    finally:
        r.close()
    if not records:
        raise LogsError(f"no decisions with outcomes in {len(chosen)} title(s) yet")
    return write_records(records, out)
