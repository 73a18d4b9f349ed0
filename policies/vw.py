"""TEMPORARY placeholder so the package imports while the real policy is written; replaced before merge."""

from typing import Any

from policies.uniform import Uniform


class VowpalWabbit(Uniform):
    name = "vw"

    def __init__(self, *args: Any, **params: Any) -> None:
        params = {k: v for k, v in params.items() if k == "floor"}
        super().__init__(*args, **params)
