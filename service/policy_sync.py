"""Keeping a live policy in step with its title's config; shared by the learner and the workers' cache.

A policy is tied to its variant's policy spec and the title's feature schema; when either changes it is
replaced by a fresh one (`spec_fingerprint` tells). Artworks can come and go while it lives:
`fit_arms` adds and removes arms so the policy's arms are exactly the title's artworks.
"""

from __future__ import annotations

import hashlib
import json

from policies import Policy
from service.catalog import TitleConfig


def spec_fingerprint(cfg: TitleConfig, variant: str) -> str:
    """Changes exactly when the variant's policy must start afresh: its spec or the feature schema."""
    spec = cfg.variant(variant).policy
    doc = json.dumps({"policy": spec.model_dump(mode="json"), "features": cfg.features}, sort_keys=True)
    return hashlib.blake2b(doc.encode(), digest_size=12).hexdigest()


def fit_arms(policy: Policy, cfg: TitleConfig) -> bool:
    """Add the title's new artworks (with their features) and remove the dropped ones. True if changed."""
    wanted = cfg.artwork_ids
    have = set(policy.arms)
    changed = False
    for art in cfg.artworks:
        if art.id not in have:
            policy.add_arm(art.id, dict(art.features))
            changed = True
    keep = set(wanted)
    for arm in policy.arms:
        if arm not in keep:
            policy.remove_arm(arm)
            changed = True
    return changed


def stable_seed(title_id: str, variant: str) -> int:
    """A seed that is the same for a (title, variant) in every process: the learner's fresh policies."""
    digest = hashlib.blake2b(f"{title_id}\0{variant}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def reseed(policy: Policy, seed: int | None = None) -> None:
    """Give a policy loaded from a shared snapshot this process's own random stream (OS entropy unless a
    seed is given), so workers that load the same snapshot do not draw the same arms."""
    policy.reseed(seed)
