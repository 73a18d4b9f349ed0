"""Policies by name. The service, the simulator and the CLI look policies up here and nowhere else."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policies import state
from policies.base import Policy
from policies.epsilon_greedy import EpsilonGreedy
from policies.fixed import Fixed
from policies.linear_ts import LinearTS
from policies.linucb import LinUCB
from policies.uniform import Uniform
from policies.vw import VowpalWabbit

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (Uniform, Fixed, EpsilonGreedy, LinUCB, LinearTS, VowpalWabbit)
}


def create_policy(
    name: str, arms: Sequence[str], features: Sequence[str], seed: int | None = None, **params: Any
) -> Policy:
    """Build a policy by registry name; unknown names and bad parameters raise ValueError."""
    cls = POLICIES.get(name)
    if cls is None:
        raise ValueError(f"unknown policy {name!r}; known policies: {', '.join(sorted(POLICIES))}")
    return cls(arms, features, seed, **params)


def load_policy(data: bytes) -> Policy:
    """Rebuild a policy from `Policy.to_bytes()`; it decides exactly as the original from here on."""
    meta, arrays = state.unpack(data)
    cls = POLICIES.get(meta.get("policy", ""))
    if cls is None:
        raise ValueError(f"policy state names unknown policy {meta.get('policy')!r}")
    return cls._from_state(meta, arrays)
