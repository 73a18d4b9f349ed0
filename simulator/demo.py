"""Demo traffic for `artbandit run`: synthetic viewers who click according to a known model, sent
through the real HTTP API, so the dashboard and `/stats` fill with data a policy can learn from.

Viewers are the simulator's (`simulator.world.World`): each has a taste vector over genre/tone features,
drawn from a seeded Dirichlet. The click model is the simulator's too, applied to the catalog's own
artworks: an artwork's appeal is its catalog feature vector (normalized), so

    P(click) = sigmoid(logit(title base rate) + artwork bias + 3 · taste · appeal)

— a viewer who likes horror clicks the frightened close-up far more often than the family shot. The
viewer's tastes are sent as the impression's context (only the features the title declares). A
contextual policy can therefore beat any single artwork, and the CTR of the `linucb` variant rises over
the first minutes while `control` (one fixed artwork) stays flat.

Viewers browse pages (`pages=True`, the default): a visit loads one page of every catalog title in a
popularity-weighted order with `POST /impressions` and `defer: true`, scrolls down row by row (each
next row is reached with probability SCROLL_ON), activates the rows it reached (`POST /activate`) and
clicks some of those. The rows it never reached are never shown: the dashboard counts them `never_shown`
and nothing learns from them. With `pages=False` every visit is one `POST /impression` of one title.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from service.catalog import TitleConfig
from simulator.config import WorldConfig
from simulator.world import World

log = logging.getLogger(__name__)
ARTWORK_BIAS_SD = 0.2
SCROLL_ON = 0.7  # probability that a browsing viewer reaches the next row of the page


@dataclass(frozen=True)
class ViewerModel:
    """A simulator World whose titles and artworks are the catalog's."""

    world: World
    titles: list[TitleConfig]
    slot: dict[tuple[int, str], int]  # (title index, artwork id) -> slot in the world's title

    @classmethod
    def from_catalog(cls, titles: list[TitleConfig], seed: int = 7, viewers: int = 5000) -> ViewerModel:
        if not titles:
            raise ValueError("the demo needs at least one title in the catalog")
        features = sorted({f for t in titles for f in t.features})
        base = World.generate(
            WorldConfig(seed=seed, viewers=viewers, titles=len(titles), artworks=1, tastes=len(features))
        )
        artworks = [(t, a) for t, cfg in enumerate(titles) for a in cfg.artworks]
        index = {f: i for i, f in enumerate(features)}
        appeal = np.zeros((len(artworks), len(features)))
        for row, (_, art) in enumerate(artworks):
            for name, value in art.features.items():
                appeal[row, index[name]] = max(0.0, value)
        norms = np.linalg.norm(appeal, axis=1, keepdims=True)
        appeal = np.divide(appeal, norms, out=np.zeros_like(appeal), where=norms > 0)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDE30]))
        world = replace(
            base,
            feature_names=features,
            title_ids=[t.title_id for t in titles],
            artwork_ids=[f"{titles[t].title_id}/{a.id}" for t, a in artworks],
            artwork_title=np.array([t for t, _ in artworks], dtype=np.int64),
            appeal=appeal,
            appeal_after=appeal,
            bias=rng.normal(0.0, ARTWORK_BIAS_SD, size=len(artworks)),
            pair=np.zeros((len(artworks), 2), dtype=np.int64),
            appears_at=np.zeros(len(artworks)),
        )
        slot = {(t, a.id): k for t, cfg in enumerate(titles) for k, a in enumerate(cfg.artworks)}
        return cls(world, list(titles), slot)

    @property
    def viewers(self) -> int:
        return int(self.world.tastes.shape[0])

    def context(self, title: int, viewer: int) -> dict[str, float]:
        """The viewer's tastes on the title's declared features (what the service is told)."""
        taste = self.world.tastes[viewer]
        names = self.world.feature_names
        wanted = set(self.titles[title].features)
        return {name: round(float(taste[i]), 4) for i, name in enumerate(names) if name in wanted}

    def click_probability(self, title: int, viewer: int, artwork_id: str) -> float:
        truth = self.world.truth(np.array([title]), np.array([viewer]), np.array([0.0]), np.array([0]))
        k = self.slot.get((title, artwork_id))
        return 0.0 if k is None else float(truth.probabilities[0, k])


@dataclass
class DemoCounters:
    impressions: int = 0
    clicks: int = 0
    never_shown: int = 0  # deferred rows the viewer never scrolled to
    fallbacks: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {"impressions": self.impressions, "clicks": self.clicks, "fallbacks": self.fallbacks,
                    "errors": self.errors, "never_shown": self.never_shown}  # fmt: skip


class _Client:
    """One keep-alive HTTP connection; reconnects after an error."""

    def __init__(self, base_url: str, timeout: float = 5.0, client_key: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the demo needs an http:// base URL, got {base_url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.headers = {"Content-Type": "application/json"}
        if client_key:  # the service requires client keys (ARTBANDIT_CLIENT_KEYS)
            self.headers["Authorization"] = f"Bearer {client_key}"

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request("POST", path, json.dumps(body), self.headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        return resp.status, json.loads(data) if data else {}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class DemoTraffic:
    """`threads` threads sending about `rate` impressions per second in total until `stop()`."""

    def __init__(
        self,
        base_url: str,
        model: ViewerModel,
        rate: float = 30.0,
        threads: int = 3,
        seed: int = 11,
        client_key: str | None = None,
        pages: bool = True,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 impressions per second, got {rate!r}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.base_url, self.model, self.rate, self.seed = base_url, model, rate, seed
        self.client_key = client_key
        self.pages = pages
        self.counters = DemoCounters()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(i, threads), name=f"demo-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> DemoTraffic:
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)

    def _loop(self, index: int, n_threads: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index]))
        client = _Client(self.base_url, client_key=self.client_key)
        popularity = self.model.world.popularity
        # a page carries one impression per title: pace visits so impressions arrive at about `rate`
        interval = n_threads / self.rate * (len(popularity) if self.pages else 1)
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                title = int(rng.choice(len(popularity), p=popularity))
                viewer = int(rng.integers(self.model.viewers))
                try:
                    if self.pages:
                        self._page(client, rng, viewer)
                    else:
                        self._one(client, rng, title, viewer)
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    self.counters.add(errors=1)
                    log.warning("demo request failed (%s); retrying in 1 s", exc)
                    self._stop.wait(1.0)
                    next_at = time.monotonic()
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            client.close()

    def _page(self, client: _Client, rng: np.random.Generator, viewer: int) -> None:
        """One visit: a deferred page of every title, the rows scrolled to activated, some clicked."""
        popularity = self.model.world.popularity
        n = len(popularity)
        order = [int(t) for t in rng.choice(n, size=n, replace=False, p=popularity)]
        context: dict[str, float] = {}
        for t in order:
            context.update(self.model.context(t, viewer))
        request = {
            "user_id": f"viewer-{viewer}",
            "context": context,
            "titles": [self.model.titles[t].title_id for t in order],
            "defer": True,
        }
        status, body = client.post("/impressions", request)
        if status != 200:
            raise ValueError(f"/impressions answered {status}: {body.get('message')}")
        reached = 1
        while reached < len(order) and rng.random() < SCROLL_ON:
            reached += 1
        entries = body["impressions"]
        shown = [(t, e) for t, e in zip(order[:reached], entries[:reached], strict=True) if "error" not in e]
        logged = [e["impression_id"] for _, e in shown if not e["fallback"]]
        self.counters.add(
            impressions=len(shown),
            fallbacks=sum(1 for _, e in shown if e["fallback"]),
            never_shown=sum(1 for e in entries[reached:] if e.get("impression_id")),
        )
        if logged:
            status, answer = client.post("/activate", {"impression_ids": logged})
            if status != 200:
                raise ValueError(f"/activate answered {status}: {answer.get('message')}")
        for t, entry in shown:
            if entry["fallback"]:
                continue
            if rng.random() < self.model.click_probability(t, viewer, entry["artwork_id"]):
                status, answer = client.post("/click", {"impression_id": entry["impression_id"]})
                if status != 200:
                    raise ValueError(f"/click answered {status}: {answer.get('message')}")
                self.counters.add(clicks=1)

    def _one(self, client: _Client, rng: np.random.Generator, title: int, viewer: int) -> None:
        cfg = self.model.titles[title]
        request = {
            "title_id": cfg.title_id,
            "user_id": f"viewer-{viewer}",
            "context": self.model.context(title, viewer),
        }
        status, body = client.post("/impression", request)
        if status != 200:
            raise ValueError(f"/impression answered {status}: {body.get('message')}")
        if body["fallback"]:
            self.counters.add(impressions=1, fallbacks=1)
            return
        self.counters.add(impressions=1)
        if rng.random() < self.model.click_probability(title, viewer, body["artwork_id"]):
            status, answer = client.post("/click", {"impression_id": body["impression_id"]})
            if status != 200:
                raise ValueError(f"/click answered {status}: {answer.get('message')}")
            self.counters.add(clicks=1)
