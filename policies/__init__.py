"""artbandit policies: pure computation (numpy, Vowpal Wabbit). No Flask, no Redis.

    from policies import create_policy, load_policy
    p = create_policy("linucb", arms=["romance", "comedy"], features=["romance", "comedy"], seed=7)
    d = p.decide({"romance": 0.7})
"""

from policies.base import BatchDecision, Decision, InvalidContext, Policy, Settings
from policies.registry import POLICIES, create_policy, load_policy

__all__ = [
    "POLICIES",
    "BatchDecision",
    "Decision",
    "InvalidContext",
    "Policy",
    "Settings",
    "create_policy",
    "load_policy",
]
