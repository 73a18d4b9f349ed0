"""The knobs of a synthetic world, validated on construction (errors name the field and the bound).

Times are seconds of simulated time. A world is fully determined by its `WorldConfig` (seed included);
`World.generate(config)` draws it and `World.save`/`World.load` keep the drawn arrays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from policies.base import check_number

TASTE_NAMES = (
    "romance", "comedy", "action", "drama", "thriller", "horror", "family", "documentary",
    "dark", "light", "fast_paced", "slow_burn", "quirky", "epic", "intimate", "nostalgic",
)  # fmt: skip


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a world: its viewers, titles, artworks, click model and traffic."""

    seed: int = 1
    # size
    viewers: int = 10_000
    titles: int = 10
    artworks: int = 8  # per title, at the start
    tastes: int = 16  # taste dimensions = context features the service sees
    # who likes what
    taste_concentration: float = (
        0.3  # Dirichlet concentration of a viewer's tastes (small: few strong tastes)
    )
    artwork_tastes: int = 2  # how many tastes each artwork speaks to
    # click model: logit = logit(base rate) + bias + appeal_strength * taste·appeal + nonlinearity * 4 u_i u_j
    base_rate_low: float = 0.02
    base_rate_high: float = 0.06
    appeal_strength: float = 2.5
    artwork_bias_sd: float = 0.2
    nonlinearity: float = 0.0
    context_noise: float = 0.0  # std of Gaussian noise on the features the service sees (truth stays clean)
    fatigue: float = (
        0.0  # click probability x (1 - fatigue)^(earlier impressions of this viewer on this title)
    )
    # traffic
    rate: float = 200.0  # impressions per simulated second (Poisson arrivals)
    returning: float = 0.7  # probability that an impression comes from a viewer seen before
    popularity_exponent: float = 1.0  # title popularity ~ 1 / rank^exponent
    # clicks arrive after a lognormal delay (median, sigma); median 0 = immediately
    click_delay_median: float = 5.0
    click_delay_sigma: float = 1.0
    # changes during the run
    drift_at: float | None = None  # at this time, what each artwork speaks to shifts...
    drift_strength: float = 0.8  # ...by this much (0: nothing changes, 1: entirely new appeal)
    new_artworks_at: float | None = None  # at this time every title gets...
    new_artworks: int = 0  # ...this many new artworks

    def __post_init__(self) -> None:
        for name in ("seed",):
            check_number(name, getattr(self, name), low=0, integer=True)
        for name in ("viewers", "titles", "artworks", "tastes", "artwork_tastes"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("new_artworks", self.new_artworks, low=0, integer=True)
        if self.artwork_tastes > self.tastes:
            raise ValueError(
                f"artwork_tastes must be in [1, tastes={self.tastes}], got {self.artwork_tastes}"
            )
        check_number("taste_concentration", self.taste_concentration, low=0.0, low_open=True)
        check_number("base_rate_low", self.base_rate_low, low=0.0, high=1.0, low_open=True, high_open=True)
        check_number("base_rate_high", self.base_rate_high, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.base_rate_high < self.base_rate_low:
            raise ValueError(
                f"base_rate_high must be >= base_rate_low={self.base_rate_low}, got {self.base_rate_high}"
            )
        for name in (
            "appeal_strength",
            "artwork_bias_sd",
            "nonlinearity",
            "context_noise",
            "click_delay_median",
        ):
            check_number(name, getattr(self, name), low=0.0)
        check_number("click_delay_sigma", self.click_delay_sigma, low=0.0)
        check_number("fatigue", self.fatigue, low=0.0, high=1.0, high_open=True)
        check_number("rate", self.rate, low=0.0, low_open=True)
        check_number("returning", self.returning, low=0.0, high=1.0)
        check_number("popularity_exponent", self.popularity_exponent, low=0.0)
        check_number("drift_strength", self.drift_strength, low=0.0, high=1.0)
        for name in ("drift_at", "new_artworks_at"):
            value = getattr(self, name)
            if value is not None:
                check_number(name, value, low=0.0)
        if self.new_artworks and self.new_artworks_at is None:
            raise ValueError("new_artworks > 0 needs new_artworks_at (the time they appear)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorldConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown world setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> WorldConfig:
        return WorldConfig.from_json({**self.to_json(), **changes})


def taste_names(n: int) -> list[str]:
    """Feature names for n taste dimensions: readable genre/tone names first, then taste_17, ..."""
    return [TASTE_NAMES[i] if i < len(TASTE_NAMES) else f"taste_{i + 1}" for i in range(n)]
