"""A synthetic world with known click probabilities: viewers with tastes, titles with candidate artworks.

Click model for viewer u (taste vector, unit length), title t and artwork k at time s:

    logit = logit(base_t) + bias_k + appeal_strength * u·a_k(s) + nonlinearity * 4 * u[i_k] * u[j_k]
    P(click) = sigmoid(logit) * (1 - fatigue) ** (earlier impressions of u on t, at most 20)

`a_k(s)` is the artwork's appeal (unit vector over a few tastes); after `drift_at` it is the drifted
appeal. The product term is the optional non-linearity: artwork k also speaks to viewers who like both
tastes i_k and j_k, which no model linear in the features can represent. Artworks exist from their
`appears_at` time on. Everything is drawn from the config's seed, so a config is a world; `save`/`load`
keep the drawn arrays in JSON or .npz (no pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from simulator.config import WorldConfig, taste_names

FORMAT = "artbandit-world/1"
_ARRAYS = (
    "tastes",
    "base_logit",
    "popularity",
    "artwork_title",
    "appeal",
    "appeal_after",
    "bias",
    "pair",
    "appears_at",
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _sparse_unit(rng: np.random.Generator, n: int, dims: int, active: int) -> np.ndarray:
    """n non-negative unit vectors, each with `active` non-zero coordinates."""
    out = np.zeros((n, dims))
    for row in range(n):
        cols = rng.choice(dims, size=active, replace=False)
        out[row, cols] = rng.uniform(0.5, 1.0, size=active)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@dataclass(frozen=True)
class ImpressionTruth:
    """Ground truth for n impressions over the title's artwork slots (padded to the widest title)."""

    probabilities: np.ndarray  # (n, S) click probability of each slot, 0 where unavailable
    available: np.ndarray  # (n, S) bool: the slot holds an artwork that exists at the impression's time
    artwork: np.ndarray  # (n, S) global artwork index of each slot, -1 for padding

    @property
    def oracle(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def uniform(self) -> np.ndarray:
        return self.probabilities.sum(axis=1) / self.available.sum(axis=1)


@dataclass(frozen=True, eq=False)
class World:
    config: WorldConfig
    feature_names: list[str]
    title_ids: list[str]
    artwork_ids: list[str]
    tastes: np.ndarray  # (V, D) true tastes, unit length
    base_logit: np.ndarray  # (T,)
    popularity: np.ndarray  # (T,) sums to 1
    artwork_title: np.ndarray  # (A,) title index of each artwork
    appeal: np.ndarray  # (A, D)
    appeal_after: np.ndarray  # (A, D) appeal after drift_at
    bias: np.ndarray  # (A,)
    pair: np.ndarray  # (A, 2) the taste pair of the non-linear term
    appears_at: np.ndarray  # (A,) seconds

    # ----------------------------------------------------------------- building
    @classmethod
    def generate(cls, config: WorldConfig) -> World:
        c = config
        rng = np.random.default_rng(np.random.SeedSequence([c.seed, 0x3041D]))
        tastes = rng.dirichlet(np.full(c.tastes, c.taste_concentration), size=c.viewers)
        tastes /= np.linalg.norm(tastes, axis=1, keepdims=True)
        base = rng.uniform(c.base_rate_low, c.base_rate_high, size=c.titles)
        ranks = np.arange(1, c.titles + 1, dtype=float)
        popularity = ranks**-c.popularity_exponent
        per_title = c.artworks + c.new_artworks
        n_art = c.titles * per_title
        appeal = _sparse_unit(rng, n_art, c.tastes, c.artwork_tastes)
        fresh = _sparse_unit(rng, n_art, c.tastes, c.artwork_tastes)
        after = (1.0 - c.drift_strength) * appeal + c.drift_strength * fresh
        after /= np.linalg.norm(after, axis=1, keepdims=True)
        bias = rng.normal(0.0, c.artwork_bias_sd, size=n_art)
        pair = np.stack([rng.choice(c.tastes, size=2, replace=c.tastes < 2) for _ in range(n_art)])
        slot = np.tile(np.arange(per_title), c.titles)
        late = slot >= c.artworks
        appears_at = np.where(late, c.new_artworks_at if c.new_artworks_at is not None else 0.0, 0.0)
        title_ids = [f"title-{t + 1:03d}" for t in range(c.titles)]
        artwork_ids = [f"{title_ids[t]}-art-{k + 1}" for t in range(c.titles) for k in range(per_title)]
        return cls(
            config=c,
            feature_names=taste_names(c.tastes),
            title_ids=title_ids,
            artwork_ids=artwork_ids,
            tastes=tastes,
            base_logit=np.log(base / (1.0 - base)),
            popularity=popularity / popularity.sum(),
            artwork_title=np.repeat(np.arange(c.titles), per_title),
            appeal=appeal,
            appeal_after=after,
            bias=bias,
            pair=pair.astype(np.int64),
            appears_at=appears_at.astype(float),
        )

    def __post_init__(self) -> None:
        v, d = self.tastes.shape
        t, a = len(self.title_ids), len(self.artwork_ids)
        expected = {
            "base_logit": (t,), "popularity": (t,), "artwork_title": (a,), "appeal": (a, d),
            "appeal_after": (a, d), "bias": (a,), "pair": (a, 2), "appears_at": (a,),
        }  # fmt: skip
        for name, shape in expected.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(f"world array {name} must have shape {shape}, got {got}")
        if len(self.feature_names) != d:
            raise ValueError(f"feature_names must have {d} names, got {len(self.feature_names)}")
        if a and (self.artwork_title.min() < 0 or self.artwork_title.max() >= t):
            raise ValueError(f"artwork_title must be in [0, {t - 1}]")
        if any((self.artwork_title == i).sum() == 0 for i in range(t)):
            raise ValueError("every title needs at least one artwork")

    # ----------------------------------------------------------------- derived tables
    @cached_property
    def slots(self) -> np.ndarray:
        """(T, S) global artwork indices of each title's artworks in order, -1 padded."""
        per = [np.flatnonzero(self.artwork_title == t) for t in range(len(self.title_ids))]
        width = max(len(p) for p in per)
        out = np.full((len(per), width), -1, dtype=np.int64)
        for t, p in enumerate(per):
            out[t, : len(p)] = p
        return out

    def title_artworks(self, title: int, at: float = np.inf) -> list[str]:
        """Ids of the title's artworks that exist at time `at` (all of them by default), in slot order."""
        return [self.artwork_ids[g] for g in self.slots[title] if g >= 0 and self.appears_at[g] <= at]

    def artwork_features(self, artwork: int) -> dict[str, float]:
        """The tags an artwork carries (the tastes it speaks to at the start), as a catalog lists them."""
        return {self.feature_names[i]: 1.0 for i in np.flatnonzero(self.appeal[artwork] > 0)}

    @property
    def arrival_times(self) -> list[float]:
        """Times at which new artworks appear (sorted, > 0)."""
        return sorted({float(t) for t in self.appears_at if t > 0})

    # ----------------------------------------------------------------- ground truth
    def truth(
        self, title: np.ndarray, viewer: np.ndarray, time: np.ndarray, views: np.ndarray
    ) -> ImpressionTruth:
        """Click probability of every artwork slot for n impressions (title, viewer, time, earlier views)."""
        c = self.config
        idx = self.slots[title]  # (n, S)
        safe = np.maximum(idx, 0)
        available = (idx >= 0) & (self.appears_at[safe] <= time[:, None])
        u = self.tastes[viewer]  # (n, D)
        match = np.zeros(idx.shape)
        drifted = None if c.drift_at is None else time >= c.drift_at
        for t in np.unique(title):
            rows = np.flatnonzero(title == t)
            cols = self.slots[t]
            cols = cols[cols >= 0]
            ut = u[rows]
            m = ut @ self.appeal[cols].T
            if drifted is not None and drifted[rows].any():
                m = np.where(drifted[rows][:, None], ut @ self.appeal_after[cols].T, m)
            match[rows, : len(cols)] = m
        logit = self.base_logit[title][:, None] + self.bias[safe] + c.appeal_strength * match
        if c.nonlinearity:
            p = self.pair[safe]  # (n, S, 2)
            rows = np.arange(len(u))[:, None]
            logit = logit + c.nonlinearity * 4.0 * u[rows, p[..., 0]] * u[rows, p[..., 1]]
        prob = _sigmoid(logit)
        if c.fatigue:
            prob = prob * ((1.0 - c.fatigue) ** np.minimum(views, 20))[:, None]
        return ImpressionTruth(np.where(available, prob, 0.0), available, idx)

    # ----------------------------------------------------------------- persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "config": self.config.to_json(),
            "feature_names": self.feature_names,
            "title_ids": self.title_ids,
            "artwork_ids": self.artwork_ids,
            "arrays": {name: getattr(self, name).tolist() for name in _ARRAYS},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> World:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a saved world: format must be {FORMAT!r}, got {data.get('format')!r}")
        arrays = data["arrays"]
        missing = [n for n in _ARRAYS if n not in arrays]
        if missing:
            raise ValueError(f"saved world lacks array(s): {', '.join(missing)}")
        ints = {"artwork_title", "pair"}
        return cls(
            config=WorldConfig.from_json(data["config"]),
            feature_names=list(data["feature_names"]),
            title_ids=list(data["title_ids"]),
            artwork_ids=list(data["artwork_ids"]),
            **{n: np.asarray(arrays[n], dtype=np.int64 if n in ints else float) for n in _ARRAYS},
        )

    def save(self, path: str | Path) -> Path:
        """Write the world as .json (everything as JSON) or .npz (arrays + a JSON header); no pickle."""
        path = Path(path)
        data = self.to_json()
        if path.suffix == ".json":
            path.write_text(json.dumps(data))
        elif path.suffix == ".npz":
            header = {k: v for k, v in data.items() if k != "arrays"}
            arrays = {n: getattr(self, n) for n in _ARRAYS}
            np.savez_compressed(path, header=np.array(json.dumps(header)), **arrays)
        else:
            raise ValueError(f"world file must end in .json or .npz, got {path.name!r}")
        return path

    @classmethod
    def load(cls, path: str | Path) -> World:
        path = Path(path)
        if path.suffix == ".json":
            return cls.from_json(json.loads(path.read_text()))
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                header = json.loads(str(npz["header"]))
                header["arrays"] = {n: npz[n] for n in _ARRAYS if n in npz.files}
            return cls.from_json(header)
        raise ValueError(f"world file must end in .json or .npz, got {path.name!r}")
