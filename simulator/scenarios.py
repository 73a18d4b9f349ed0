"""Named scenarios for `artbandit simulate --scenario NAME`: a world and a run that tell one story.

A scenario fills in the world knobs and run settings it is about; anything given on the command line
(`--set`, `--window`, `--impressions`, `--buckets`, `--policies`) wins over it.

- `launch`: launch day of one brand-new title. The production attribution window (1800 s), 30 impressions
  per second for two simulated hours (216,000 impressions), curves by the minute (120 buckets). Clicks
  arrive after a log-normal delay with a median of 60 s and sigma 1.5: most within minutes, a tail that
  reaches the window (1.2% of clicks come after 1800 s and are not attributed). Compare the default
  (LinUCB learns early) with `--param linucb.early_updates=false`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scenario:
    world: dict[str, Any] = field(default_factory=dict)  # WorldConfig knobs
    window: float | None = None
    impressions: int | None = None
    buckets: int | None = None
    policies: str | None = None


LAUNCH_HOURS = 2.0
LAUNCH_RATE = 30.0

SCENARIOS: dict[str, Scenario] = {
    "launch": Scenario(
        world={"titles": 1, "rate": LAUNCH_RATE, "click_delay_median": 60.0, "click_delay_sigma": 1.5},
        window=1800.0,
        impressions=int(LAUNCH_RATE * LAUNCH_HOURS * 3600),
        buckets=120,
        policies="linucb",
    ),
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}") from None
