"""What the service writes into its streams: decision records and labelled events.

A decision record (one entry of `keys.decisions_stream`, field `json`) carries the fields the Decision
Service JSON (DSJSON) log needs, under these names:

    EventId, Timestamp (ISO 8601 UTC, ms), decided_at (epoch s), title, variant, user, policy,
    model_version, context {feature: value}, artworks [ids in the order of probabilities],
    probabilities [...], chosen (artwork id), propensity (probability of chosen)

A labelled event (one entry of `keys.labelled_stream`) has the fields `id` (impression id), `r` (reward,
"1" or "0"), `at` (labelled_at, epoch s as text) and `ev`, a small JSON object the join copies verbatim
from the impression: variant, artwork, context, propensity, decided_at, model_version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.learning import LabelledEvent

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]  # what XRANGE returns (bytes responses)

_COMPACT = {"separators": (",", ":"), "allow_nan": False}


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

    def to_json(self) -> str:
        return json.dumps(
            {
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
            },
            **_COMPACT,  # type: ignore[arg-type]
        )

    def label_json(self) -> str:
        """The part of the record the learner needs, stored with the impression for the join."""
        return json.dumps(
            {
                "variant": self.variant,
                "artwork": self.chosen,
                "context": dict(self.context),
                "propensity": self.propensity,
                "decided_at": self.decided_at,
                "model_version": self.model_version,
            },
            **_COMPACT,  # type: ignore[arg-type]
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> DecisionRecord:
        d = json.loads(raw)
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
        )


def iso_timestamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_labelled(title_id: str, fields: Mapping[bytes, bytes]) -> LabelledEvent:
    """One labelled-stream entry -> LabelledEvent. Raises ValueError if the entry is malformed."""
    try:
        ev: dict[str, Any] = json.loads(fields[b"ev"])
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
        )
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed labelled event: {exc!r}") from exc
