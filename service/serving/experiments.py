"""Sticky assignment of viewers to experiment variants.

Weighted rendezvous hashing: each variant v gets the score w_v / -ln(u(salt, v, user)), where u is a
uniform number in (0, 1) from a keyed BLAKE2b hash; the viewer goes to the variant with the highest
score. P(variant v) = w_v / sum(w). The hash is stable across processes, machines and restarts (it is
not Python's salted `hash()`), and changing one variant's weight only moves viewers into or out of that
variant: everybody else keeps their variant.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence


def _unit(salt: str, variant: str, user_id: str) -> float:
    digest = hashlib.blake2b(
        user_id.encode(),
        digest_size=8,
        key=salt.encode()[:64],
        person=b"artbandit",
        salt=variant.encode()[:16],
    ).digest()
    # 53 random bits -> (0, 1), never exactly 0 or 1
    return ((int.from_bytes(digest, "big") >> 11) + 0.5) / float(1 << 53)


def assign_variant(salt: str, user_id: str, variants: Sequence[tuple[str, float]]) -> str:
    """Pick the viewer's variant from (name, weight) pairs; weights must be positive."""
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    best_name, best_score = "", -math.inf
    for name, weight in variants:
        if not weight > 0:
            raise ValueError(f"variant {name!r}: weight must be > 0, got {weight!r}")
        score = weight / -math.log(_unit(salt, name, user_id))
        if score > best_score:
            best_name, best_score = name, score
    return best_name
