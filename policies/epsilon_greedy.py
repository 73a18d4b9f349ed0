"""TEMPORARY placeholder so the package imports while the real policy is written; replaced before merge."""

from typing import Any

from policies.uniform import Uniform


class EpsilonGreedy(Uniform):
    name = "epsilon_greedy"

    def __init__(self, *args: Any, **params: Any) -> None:
        params = {k: v for k, v in params.items() if k == "floor"}
        super().__init__(*args, **params)
