"""What the service writes into its streams: decision records and labelled events.

A decision record (one entry of `keys.decisions_stream`, field `json`) carries the fields the Decision
Service JSON (DSJSON) log needs, under these names:

    EventId, Timestamp (ISO 8601 UTC, ms), decided_at (epoch s), title, variant, user, policy,
    model_version, context {feature: value}, artworks [ids in the order of probabilities],
    probabilities [...], chosen (artwork id), propensity (probability of chosen)

A labelled event (one entry of `keys.labelled_stream`) has the fields `id` (impression id), `r` (reward,
"1" or "0"), `at` (labelled_at, epoch s as text) and `ev`, a small JSON object the join copies verbatim
from the impression: variant, artwork, context, propensity, decided_at, model_version, user (the viewer,
for the learner's per-viewer cap; absent in events labelled before it was added).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import orjson

from service.store import keys
from service.store.clients import Client

if TYPE_CHECKING:
    pass


StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]  # what XRANGE returns (bytes responses)
PAGE = 5000  # entries per XRANGE call of `stream_entries`


@dataclass(frozen=True, slots=True)
class LabelledEvent:
    """A decision with its final reward: what the join emits and the learner consumes."""

    impression_id: str
    title_id: str
    variant: str
    context: Mapping[str, float]
    artwork_id: str
    reward: float
    propensity: float
    decided_at: float
    labelled_at: float
    model_version: int = 0
    user_id: str = ""  # the viewer ("" when the label payload did not carry it)
    deferred: bool = False  # decided with `defer` (and activated: never-shown ones are never labelled)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    event_id: str
    title_id: str
    variant: str
    user_id: str
    context: Mapping[str, float]
    artworks: list[str]
    probabilities: list[float]
    chosen: str
    propensity: float
    model_version: int
    policy: str
    decided_at: float
    deferred: bool = False  # decided with `defer`: counts only once activated (absent from the JSON if not)

    def to_json(self) -> bytes:
        """The stream entry (compact UTF-8 JSON; orjson: a tenth of the stdlib's time on this path)."""
        doc = {
            "EventId": self.event_id,
            "Timestamp": iso_timestamp(self.decided_at),
            "decided_at": self.decided_at,
            "title": self.title_id,
            "variant": self.variant,
            "user": self.user_id,
            "policy": self.policy,
            "model_version": self.model_version,
            "context": dict(self.context),
            "artworks": self.artworks,
            "probabilities": self.probabilities,
            "chosen": self.chosen,
            "propensity": self.propensity,
        }
        if self.deferred:
            doc["deferred"] = True
        return _dumps(doc)

    def label_json(self) -> bytes:
        """The part of the record the learner needs, stored with the impression for the join."""
        doc = {
            "variant": self.variant,
            "artwork": self.chosen,
            "context": dict(self.context),
            "propensity": self.propensity,
            "decided_at": self.decided_at,
            "model_version": self.model_version,
            "user": self.user_id,  # the learner's per-viewer cap (service.learning.throttle)
        }
        if self.deferred:  # early updates leave deferred impressions to the deadline (learning/early.py)
            doc["deferred"] = True
        return _dumps(doc)

    @classmethod
    def from_json(cls, raw: str | bytes) -> DecisionRecord:
        d = orjson.loads(raw)
        return cls(
            event_id=d["EventId"],
            title_id=d["title"],
            variant=d["variant"],
            user_id=d["user"],
            context=d["context"],
            artworks=list(d["artworks"]),
            probabilities=[float(p) for p in d["probabilities"]],
            chosen=d["chosen"],
            propensity=float(d["propensity"]),
            model_version=int(d["model_version"]),
            policy=d["policy"],
            decided_at=float(d["decided_at"]),
            deferred=bool(d.get("deferred", False)),
        )


def _dumps(obj: dict[str, Any]) -> bytes:
    """Compact JSON. orjson writes non-finite floats as null, so refuse them here as `json` did with
    allow_nan=False: a record must never be logged with a value the reader cannot tell apart from null."""
    for name in ("decided_at", "propensity"):
        if name in obj and not math.isfinite(obj[name]):
            raise ValueError(f"{name} must be finite, got {obj[name]!r}")
    return orjson.dumps(obj)


def iso_timestamp(t: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-28T08:00:00.123Z (the DSJSON Timestamp)."""
    dt = datetime.fromtimestamp(t, UTC)
    return f"{_iso_second(round(dt.timestamp() - dt.microsecond / 1e6))}.{dt.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=8)
def _iso_second(second: int) -> str:
    """The part up to the seconds; decisions arrive thousands a second, so it is formatted once."""
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_labelled(title_id: str, fields: Mapping[bytes, bytes]) -> LabelledEvent:
    """One labelled-stream entry -> LabelledEvent. Raises ValueError if the entry is malformed."""
    try:
        ev: dict[str, Any] = orjson.loads(fields[b"ev"])
        return LabelledEvent(
            impression_id=fields[b"id"].decode(),
            title_id=title_id,
            variant=str(ev["variant"]),
            context=dict(ev["context"]),
            artwork_id=str(ev["artwork"]),
            reward=float(fields[b"r"]),
            propensity=float(ev["propensity"]),
            decided_at=float(ev["decided_at"]),
            labelled_at=float(fields[b"at"]),
            model_version=int(ev["model_version"]),
            user_id=str(ev.get("user", "")),
            deferred=bool(ev.get("deferred", False)),
        )
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed labelled event: {exc!r}") from exc


def stream_entries(
    r: Client, key: str, start: str = "-", page: int = PAGE
) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of a stream from `start` (inclusive; "-" for the first), oldest first, `page` per call."""
    while True:
        entries = cast(StreamEntries, r.xrange(key, min=start, max="+", count=page))
        yield from entries
        if len(entries) < page:
            return
        start = "(" + entries[-1][0].decode()


def iter_decisions(r: Client, title_id: str, start: str = "-") -> Iterator[DecisionRecord]:
    """Every decision record still in a title's stream, oldest first (for exports and tests)."""
    for _, fields in stream_entries(r, keys.decisions_stream(title_id), start):
        yield DecisionRecord.from_json(fields[b"json"])
