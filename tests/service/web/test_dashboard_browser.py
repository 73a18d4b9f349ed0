"""The dashboard in a real browser: headless Debian Chromium (Playwright) against the real service.

The API runs under gunicorn (`artbandit serve`) on the private test Redis with the sample catalog; the
learner runs in a thread; demo viewers (`simulator.demo.DemoTraffic`) send impressions and clicks over HTTP
while the pages load and refresh. A few seconds of live traffic fill only one or two minute buckets, so
the experiment title also gets a quarter of an hour of history first, through the same decide/join path
(`Decider`, `RedisJoin`) with decision times in the past: that is what makes the CTR lines real lines.

Screenshots land in test-output/dashboard/ (git-ignored). Needs /usr/bin/chromium (`make test` installs
it with apt when it can); without it the test fails and says so.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis as redis_lib

from service.catalog import load_catalog
from service.config import Settings
from service.devstack.local_stack import http_get_json, sample_catalog_path
from service.devstack.redis_server import PrivateRedis
from service.join.redis_join import RedisJoin
from service.learning.learner import Learner
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog
from simulator.demo import DemoTraffic, ViewerModel

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
OUTPUT = Path(__file__).resolve().parents[3] / "test-output" / "dashboard"
EXPERIMENT = "stranger-things"
WINDOW = 3.0  # attribution window (s): short, so non-clicks are labelled while the test runs
HISTORY_MINUTES = 15
HISTORY_PER_MINUTE = 60
READY_TIMEOUT = 30.0
API_KEY = "browser-test-key"


@dataclass
class Stack:
    base_url: str
    model: ViewerModel
    demo: DemoTraffic


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def backfill(r: redis_lib.Redis, settings: Settings, model: ViewerModel, title_id: str, seed: int = 5) -> int:
    """HISTORY_MINUTES of the title's traffic, decided and joined by the service's own code at past times."""
    index = [t.title_id for t in model.titles].index(title_id)
    decider = Decider(r, ModelCache(r, settings, seed=seed), settings)
    join = RedisJoin(r, settings)
    rng = np.random.default_rng(seed)
    start = time.time() - HISTORY_MINUTES * 60
    n = HISTORY_MINUTES * HISTORY_PER_MINUTE
    for i in range(n):
        viewer = int(rng.integers(model.viewers))
        at = start + i * 60 / HISTORY_PER_MINUTE
        res = decider.impression(title_id, f"viewer-{viewer}", model.context(index, viewer), now=at)
        assert res.impression_id is not None
        if rng.random() < model.click_probability(index, viewer, res.artwork_id):
            join.click(res.impression_id, now=at + 1.0)
    return n


def stop_process(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()  # the gunicorn master: it stops its workers
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_ready(server: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        tail = log_path.read_text()[-2000:]
        assert server.poll() is None, f"the API exited:\n{tail}"
        assert time.monotonic() < deadline, f"the API never became ready:\n{tail}"
        try:
            if http_get_json("127.0.0.1", port, "/readyz")[0] == 200:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.1)


@pytest.fixture()
def stack(redis: redis_lib.Redis, redis_server: PrivateRedis) -> Iterator[Stack]:
    if not os.access(CHROMIUM, os.X_OK):  # before starting anything
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard's browser test needs Debian's Chromium "
            "(`make test` installs it with apt-get when run as root; or `apt-get install chromium`)"
        )
    OUTPUT.mkdir(parents=True, exist_ok=True)
    settings = Settings.load(
        {"redis_url": redis_server.url, "attribution_window": WINDOW, "redis_timeout": 2.0}, environ={}
    )
    titles = load_catalog(sample_catalog_path())
    assert catalog.seed_catalog(redis, titles) == len(titles)
    model = ViewerModel.from_catalog(titles)
    backfill(redis, settings, model, EXPERIMENT)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTBANDIT_")}
    env.update(
        ARTBANDIT_REDIS_URL=redis_server.url,
        ARTBANDIT_API_KEY=API_KEY,
        ARTBANDIT_ATTRIBUTION_WINDOW=f"{WINDOW:g}",
        # patient: on a busy test machine the production 50 ms would turn slow answers into fallbacks
        ARTBANDIT_REDIS_TIMEOUT="2",
    )
    command = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]  # fmt: skip
    log_path = OUTPUT / "gunicorn.log"
    stop = threading.Event()
    learner_redis = redis_lib.Redis.from_url(redis_server.url)
    learner = threading.Thread(
        target=Learner(learner_redis, settings).run, args=(stop,), name="learner", daemon=True
    )
    demo: DemoTraffic | None = None
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            learner.start()
            wait_ready(server, port, log_path)
            base_url = f"http://127.0.0.1:{port}"
            demo = DemoTraffic(base_url, model, rate=40.0, threads=2).start()
            time.sleep(3.0)  # some live traffic, and a learner publication, before the first page
            yield Stack(base_url, model, demo)
        finally:
            if demo is not None:
                demo.stop()
            stop_process(server)
            stop.set()
            learner.join(10)
            learner_redis.close()
    assert not learner.is_alive(), "the learner thread did not stop"


def path_points(d: str) -> int:
    """Number of coordinate pairs in an SVG path made of M/L/Z commands."""
    return len(re.findall(r"-?\d+(?:\.\d+)?,-?\d+(?:\.\d+)?", d))


SERIES_JS = """svg => Array.from(svg.querySelectorAll('path[data-series]')).map(p => {
    const b = p.getBBox();
    return {series: p.dataset.series, cls: p.getAttribute('class'), d: p.getAttribute('d') || '',
            x: b.x, y: b.y, width: b.width, height: b.height};
})"""


def chart_paths(page: Any, testid: str) -> list[dict[str, Any]]:
    svg = page.get_by_test_id(testid)
    assert svg.get_attribute("data-empty") == "false", f"{testid} says it has no data"
    paths: list[dict[str, Any]] = svg.evaluate(SERIES_JS)
    box = [float(v) for v in svg.get_attribute("viewBox").split()]
    for p in paths:  # everything drawn stays inside the chart
        if p["d"]:
            assert p["x"] >= box[0] - 0.5 and p["x"] + p["width"] <= box[2] + 0.5, p
            assert p["y"] >= box[1] - 0.5 and p["y"] + p["height"] <= box[3] + 0.5, p
    return paths


def test_dashboard_in_chromium(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def on_console(message: Any) -> None:
                if message.type == "error":
                    problems.append(f"console error: {message.text}")

            page.on("console", on_console)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))

            # ---- overview: every catalog title, the experiment's row links to its page
            response = page.goto(f"{stack.base_url}/dashboard")
            assert response is not None and response.status == 200
            rows = page.get_by_test_id("titles-table").locator("tbody tr")
            expect(rows).to_have_count(len(stack.model.titles))
            row = page.locator(f'tr[data-title-id="{EXPERIMENT}"]')
            impressions = int(row.locator("td").first.inner_text().replace(",", ""))
            assert impressions >= HISTORY_MINUTES * HISTORY_PER_MINUTE
            page.screenshot(path=str(OUTPUT / "overview.png"), full_page=True)
            row.locator("a").click()
            page.wait_for_url(f"**/dashboard/{EXPERIMENT}")

            # ---- title page: tables have rows
            variants = [v.name for v in stack.model.titles[0].variants]
            assert variants == ["control", "explore", "linucb"]
            expect(page.get_by_test_id("variants-table").locator("tbody tr[data-variant]")).to_have_count(3)
            artworks = stack.model.titles[0].artwork_ids
            expect(page.get_by_test_id("artworks-table").locator("tbody tr[data-artwork]")).to_have_count(
                len(artworks)
            )
            expect(page.get_by_test_id("totals")).to_contain_text("Impressions")
            expect(page.get_by_test_id("srm")).to_be_visible()
            # pending + the seven outcomes: clicked, defaulted, late, duplicate, unknown, lost, never_shown
            expect(page.get_by_test_id("join-outcomes").locator("[data-outcome]")).to_have_count(8)
            expect(page.get_by_test_id("learner-health")).to_be_visible()
            offpolicy = page.get_by_test_id("offpolicy-table").locator("tbody tr")
            expect(offpolicy).to_have_count(2)  # control and linucb, on explore's logs
            for cells in offpolicy.all():
                ips = cells.locator("td").nth(2).inner_text()
                assert re.fullmatch(r"\d+\.\d\d%", ips), f"IPS cell {ips!r}"

            # ---- charts: one line and one band per variant, with real geometry
            ctr = chart_paths(page, "ctr-chart")
            lines = {p["series"]: p for p in ctr if p["cls"] == "line"}
            bands = {p["series"]: p for p in ctr if p["cls"] == "band"}
            assert set(lines) == set(bands) == set(variants)
            for name in variants:
                assert path_points(lines[name]["d"]) >= HISTORY_MINUTES // 2, lines[name]
                assert lines[name]["width"] > 100, lines[name]  # spans a good part of the 410-unit plot
                assert path_points(bands[name]["d"]) >= 4 and bands[name]["height"] > 0, bands[name]
            share = chart_paths(page, "share-chart")
            assert {p["series"] for p in share} == set(artworks)
            drawn = [p for p in share if path_points(p["d"]) >= 4 and p["height"] > 0]
            assert len(drawn) == len(artworks)  # explore shows every artwork, so each has an area
            expect(page.get_by_test_id("ctr-legend").locator("li")).to_have_count(3)
            expect(page.get_by_test_id("share-legend").locator("li")).to_have_count(len(artworks))
            json_link = page.get_by_test_id("json-link").get_attribute("href")
            assert json_link == f"/stats/{EXPERIMENT}"
            page.screenshot(path=str(OUTPUT / "title.png"), full_page=True)

            # ---- the page refreshes itself in place, with newer numbers
            before = page.locator("#total-impressions").inner_text()
            status = page.get_by_test_id("refresh-status")
            expect(status).to_have_text(re.compile(r"^live"))
            expect(status).to_have_text(re.compile(r"^updated \d\d:\d\d:\d\d UTC$"), timeout=15_000)
            expect(page.locator("#total-impressions")).not_to_have_text(before, timeout=15_000)
            assert len(chart_paths(page, "ctr-chart")) == 2 * len(variants)  # charts survived the swap
            page.screenshot(path=str(OUTPUT / "title-refreshed.png"), full_page=True)
        finally:
            browser.close()
    counters = stack.demo.counters.snapshot()
    assert counters["impressions"] > 0 and counters["errors"] == 0 and counters["fallbacks"] == 0, counters
    assert counters["never_shown"] > 0, counters  # the demo viewers browse deferred pages
    assert not problems, "\n".join(problems)
