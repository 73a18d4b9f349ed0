"""The HTTP driver: the world's viewers meet a running service through its real API.

For each impression of the world's traffic (at the world's rate, or `rate`), in real time:
`POST /impression` with the viewer's taste features; the world then decides from the answer's artwork
whether the viewer clicks (the same uniform draw the in-process driver uses), and if so `POST /click`
after the world's click delay (times `time_scale`). Requests run concurrently, at most `concurrency` at a
time. New artworks are added with `PUT /titles/<id>` when they appear. The metrics are those of the
in-process driver (`Recorder`), with the label taken from the service: a click answered "recorded" is
reward 1, anything else reward 0. So `run_http` and `run_inprocess` on the same world, seed and rate can
be compared directly.

Pages (`page_size` > 1): consecutive impressions are grouped into pages of up to `page_size` distinct
titles, and each page is one `POST /impressions`. A page has one viewer, context and time — the first
impression's, given to every impression of the page (their click probabilities are computed for that
viewer); each entry of the answer is then judged and clicked like a single impression. Viewers are
drawn independently per impression, so this changes which viewer meets which title, not the mix.
"""

from __future__ import annotations

import asyncio
import time as _time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from simulator.metrics import Recorder, RunResult
from simulator.traffic import Impressions, Traffic
from simulator.world import World


@dataclass(frozen=True)
class HttpSettings:
    base_url: str
    impressions: int = 2000
    rate: float | None = None  # impressions per simulated second; None: the world's rate
    concurrency: int = 32
    time_scale: float = 1.0  # real seconds per simulated second (click delays, artwork arrivals)
    timeout: float = 5.0
    api_key: str | None = None  # needed to set up titles (PUT /titles/<id>)
    client_key: str | None = None  # sent on /impression and /click when the service requires client keys
    setup: bool = True  # PUT every title with its artworks and the policy before the run
    buckets: int = 20
    seed: int = 1
    page_size: int = 1  # > 1: pages of up to this many titles per POST /impressions
    # simulated seconds: a click due later is not sent (counted as clicks_not_sent_late); set it to the
    # service's window so a run does not wait for clicks the service would only answer "late"
    max_click_delay: float | None = None

    def __post_init__(self) -> None:
        from policies.base import check_number

        check_number("page_size", self.page_size, low=1, high=100, integer=True)
        check_number("impressions", self.impressions, low=1, integer=True)
        check_number("concurrency", self.concurrency, low=1, integer=True)
        check_number("time_scale", self.time_scale, low=0.0, low_open=True)
        check_number("timeout", self.timeout, low=0.0, low_open=True)
        if self.rate is not None:
            check_number("rate", self.rate, low=0.0, low_open=True)


def title_body(world: World, title: int, policy: str, params: Mapping[str, Any], at: float) -> dict[str, Any]:
    """The admin body that creates a world's title in the service, with the artworks existing at `at`."""
    artworks = [
        {"id": world.artwork_ids[g], "features": world.artwork_features(int(g))}
        for g in world.slots[title]
        if g >= 0 and world.appears_at[g] <= at
    ]
    return {
        "features": list(world.feature_names),
        "artworks": artworks,
        "policy": {"name": policy, "params": dict(params)},
    }


class _Run:
    def __init__(self, world: World, policy: str, params: Mapping[str, Any], s: HttpSettings) -> None:
        self.world, self.policy, self.params, self.s = world, policy, dict(params), s
        self.imp = Impressions.concat(list(Traffic(world, s.seed, s.impressions, s.rate).chunks()))
        self.pages = self._pages(s.page_size)
        self.truth = world.truth(self.imp.title, self.imp.viewer, self.imp.time, self.imp.views)
        self.slot_of = {world.artwork_ids[g]: s_ for row in world.slots for s_, g in enumerate(row) if g >= 0}
        n = len(self.imp)
        self.slot = np.full(n, -1, dtype=np.int64)
        self.reward = np.zeros(n)
        self.answered = np.zeros(n, dtype=bool)
        self.latency: list[float] = []
        self.counts: Counter[str] = Counter()
        self.sem = asyncio.Semaphore(s.concurrency)
        self.data_headers = {"Authorization": f"Bearer {s.client_key}"} if s.client_key else {}
        self.pending: set[asyncio.Task[None]] = set()

    def _pages(self, size: int) -> list[list[int]]:
        """Consecutive impressions grouped into pages of distinct titles; each page's impressions get
        its first impression's viewer, context and time (see the module docstring)."""
        imp = self.imp
        pages: list[list[int]] = []
        titles: set[int] = set()
        for i in range(len(imp)):
            t = int(imp.title[i])
            if not pages or len(pages[-1]) >= size or t in titles:
                pages.append([i])
                titles = {t}
                continue
            first = pages[-1][0]
            imp.viewer[i], imp.time[i] = imp.viewer[first], imp.time[first]
            imp.context[i] = imp.context[first]
            pages[-1].append(i)
            titles.add(t)
        return pages

    async def setup(self, client: httpx.AsyncClient, at: float) -> None:
        headers = {"Authorization": f"Bearer {self.s.api_key}"} if self.s.api_key else {}
        for t, title_id in enumerate(self.world.title_ids):
            body = title_body(self.world, t, self.policy, self.params, at)
            resp = await client.put(f"/titles/{title_id}", json=body, headers=headers)
            if resp.status_code != 200:
                raise RuntimeError(f"PUT /titles/{title_id} answered {resp.status_code}: {resp.text[:300]}")

    async def impression(self, client: httpx.AsyncClient, i: int, started: float) -> None:
        w, imp = self.world, self.imp
        t = int(imp.title[i])
        body = {
            "title_id": w.title_ids[t],
            "user_id": f"viewer-{int(imp.viewer[i])}",
            "context": dict(zip(w.feature_names, imp.context[i].tolist(), strict=True)),
        }
        answer = await self._decide(client, "/impression", body, "impression")
        if answer is not None:
            self._answered(client, i, answer, started)

    async def page(self, client: httpx.AsyncClient, rows: list[int], started: float) -> None:
        w, imp = self.world, self.imp
        first = rows[0]
        body = {
            "user_id": f"viewer-{int(imp.viewer[first])}",
            "context": dict(zip(w.feature_names, imp.context[first].tolist(), strict=True)),
            "titles": [w.title_ids[int(imp.title[i])] for i in rows],
        }
        answer = await self._decide(client, "/impressions", body, "page")
        if answer is None:
            return
        for i, entry in zip(rows, answer["impressions"], strict=True):
            if "error" in entry:
                self.counts[f"entry_{entry['error']}"] += 1
            else:
                self._answered(client, i, entry, started)

    async def _decide(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any], kind: str
    ) -> dict[str, Any] | None:
        """POST a decision request with the data-plane key, timing it; the JSON answer, or None after
        counting `<kind>_error:<exception>` or `<kind>_http_<status>`."""
        async with self.sem:
            sent = _time.perf_counter()
            try:
                resp = await client.post(path, json=body, headers=self.data_headers)
            except httpx.HTTPError as exc:
                self.counts[f"{kind}_error:{type(exc).__name__}"] += 1
                return None
            self.latency.append(_time.perf_counter() - sent)
        if resp.status_code != 200:
            self.counts[f"{kind}_http_{resp.status_code}"] += 1
            return None
        answer: dict[str, Any] = resp.json()
        return answer

    def _answered(self, client: httpx.AsyncClient, i: int, answer: dict[str, Any], started: float) -> None:
        """Judge one answered impression: the world decides whether the viewer clicks its artwork."""
        imp = self.imp
        self.answered[i] = True
        self.slot[i] = self.slot_of[answer["artwork_id"]]
        if answer.get("fallback"):
            self.counts["fallback"] += 1
            return
        p = self.truth.probabilities[i, self.slot[i]]
        if imp.luck[i] < p:
            if self.s.max_click_delay is not None and imp.delay[i] > self.s.max_click_delay:
                self.counts["clicks_not_sent_late"] += 1
                return
            self.counts["clicks_sent"] += 1
            due = started + (imp.time[i] + imp.delay[i]) * self.s.time_scale
            self._spawn(self.click(client, i, answer["impression_id"], due))

    async def click(self, client: httpx.AsyncClient, i: int, impression_id: str, due: float) -> None:
        await asyncio.sleep(max(0.0, due - _time.perf_counter()))
        async with self.sem:
            try:
                resp = await client.post(
                    "/click", json={"impression_id": impression_id}, headers=self.data_headers
                )
            except httpx.HTTPError as exc:
                self.counts[f"click_error:{type(exc).__name__}"] += 1
                return
        if resp.status_code == 200:
            status = resp.json().get("status", "?")
            self.counts[f"click_{status}"] += 1
            if status == "recorded":
                self.reward[i] = 1.0
        else:
            self.counts[f"click_http_{resp.status_code}"] += 1  # 404 unknown, 410 late, 503 store down

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def run(self) -> RunResult:
        s, imp = self.s, self.imp
        limits = httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency)
        async with httpx.AsyncClient(base_url=s.base_url, timeout=s.timeout, limits=limits) as client:
            if s.setup:
                await self.setup(client, at=0.0)
            arrivals = list(self.world.arrival_times)
            started = _time.perf_counter()
            for rows in self.pages:
                i = rows[0]
                due = started + imp.time[i] * s.time_scale
                while arrivals and arrivals[0] <= imp.time[i]:
                    await self.setup(client, at=arrivals.pop(0))
                delay = due - _time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if s.page_size > 1:
                    self._spawn(self.page(client, rows, started))
                else:
                    self._spawn(self.impression(client, i, started))
            sending = _time.perf_counter() - started
            while self.pending:
                await asyncio.gather(*list(self.pending))
            elapsed = _time.perf_counter() - started
        return self.result(sending, elapsed)

    def result(self, sending: float, elapsed: float) -> RunResult:
        ok = self.answered
        idx = np.flatnonzero(ok)
        rows = np.arange(len(self.imp))[ok]
        recorder = Recorder(
            int(ok.sum()) or 1, self.s.buckets, len(self.world.title_ids), self.world.slots.shape[1]
        )
        if len(idx):
            recorder.add(
                np.arange(len(idx)), self.imp.time[rows], self.imp.title[rows], self.slot[rows],
                self.truth.probabilities[rows, self.slot[rows]], self.truth.oracle[rows],
                self.truth.uniform[rows],
                self.reward[rows], self.truth.probabilities[rows].argmax(axis=1),
            )  # fmt: skip
        lat = np.array(self.latency) if self.latency else np.zeros(1)
        extra: dict[str, Any] = {
            "driver": "http",
            "page_size": float(self.s.page_size),
            "requests": float(len(self.pages)),
            "requested": float(len(self.imp)),
            "answered": float(ok.sum()),
            "achieved_rate": float(len(self.imp) / max(sending, 1e-9)),
            "wall_seconds": elapsed,
            "impressions_per_second": float(ok.sum() / max(elapsed, 1e-9)),
            "latency_p50_ms": float(np.percentile(lat, 50) * 1000),
            "latency_p99_ms": float(np.percentile(lat, 99) * 1000),
            **{k: float(v) for k, v in sorted(self.counts.items())},
        }
        slot_ids = [[self.world.artwork_ids[g] for g in row if g >= 0] for row in self.world.slots]
        return RunResult(
            self.policy,
            self.s.seed,
            recorder.summary(),
            recorder.timeseries(),
            recorder.traffic_share(self.world.title_ids, slot_ids),
            extra,
        )


def run_http(
    world: World, policy: str, params: Mapping[str, Any] | None = None, settings: HttpSettings | None = None
) -> RunResult:
    """Drive the service at settings.base_url with the world's traffic; returns once every click is sent."""
    if settings is None:
        raise ValueError("run_http needs HttpSettings with the service's base_url")

    async def main() -> RunResult:
        return await _Run(world, policy, params or {}, settings).run()

    return asyncio.run(main())
