"""The segment heatmap, thumbnails and overview trends in headless Chromium (Playwright, Debian's Chromium).

The real app (`create_app`) serves on a free port from a thread, on the private test Redis, with the sample
catalog plus a title whose name and taste features are hostile markup. Seventy minutes of history go
through the service's own decide/join path (`Decider`, `RedisJoin`) at past decision times, with a learner
thread publishing snapshots meanwhile: steady traffic for most titles, and for `wild-planet` a quiet hour
then a busy last ten minutes — the one title the overview may mark `rising`.

Checked: no console errors, failed requests or dialogs; every thumbnail in the heatmap's column heads
loads (same-origin sample posters, and one from a configured second origin, `localhost` vs `127.0.0.1`);
an image from an origin not configured is a placeholder and never requested; hostile names are shown as
text. Screenshots land in test-output/dashboard/ (the README's docs/img/ copies come from here).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis as redis_lib
from werkzeug.serving import make_server

from service.app import create_app
from service.catalog import TitleConfig, load_catalog, parse_title
from service.config import Settings
from service.devstack.local_stack import sample_catalog_path
from service.devstack.redis_server import PrivateRedis
from service.learning.learner import Learner
from service.serving.decider import Decider
from service.serving.model_cache import ModelCache
from service.store import catalog
from simulator.demo import ViewerModel

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--disable-component-update"]  # fmt: skip
OUTPUT = Path(__file__).resolve().parents[3] / "test-output" / "dashboard"
HISTORY = 70  # minutes: the sparklines' hour and the rule's last ten minutes
PER_MINUTE = {"stranger-things": 50, "harbor-lights": 12, "deep-orbit": 12, "kitchen-chaos": 10}
RISING, QUIET, BUSY = "wild-planet", 4, 20  # impressions per minute before / in the last 10 minutes
HOSTILE_ID = "hostile"
HOSTILE_NAME = "<img src=x onerror=alert('title')>Saga & \"Co\""
HOSTILE_FEATURE = "<script>alert('segment')</script>"


@dataclass
class Stack:
    base_url: str
    port: int
    titles: list[TitleConfig]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def hostile_title(port: int) -> TitleConfig:
    art = "/dashboard/static/art/stranger-things"
    return parse_title(HOSTILE_ID, {
        "name": HOSTILE_NAME, "features": ["romance", HOSTILE_FEATURE],
        "artworks": [
            {"id": "kiss", "features": {"romance": 1.0}, "image_url": f"{art}/hopper-and-joyce.svg"},
            # the configured second origin: the same server under another host name
            {"id": "scream", "features": {HOSTILE_FEATURE: 1.0},
             "image_url": f"http://localhost:{port}{art}/demogorgon-reveal.svg"},
            {"id": "elsewhere", "image_url": "https://images.invalid/never-requested.png"},
        ],
        "policy": {"name": "uniform"},
    })


def backfill(r: redis_lib.Redis, settings: Settings, titles: list[TitleConfig], seed: int = 11) -> None:
    """HISTORY minutes of decisions and clicks through the service's own code, at past times."""
    sample = [t for t in titles if t.title_id != HOSTILE_ID]
    model = ViewerModel.from_catalog(sample)
    decider = Decider(r, ModelCache(r, settings, seed=seed), settings)
    rng = np.random.default_rng(seed)
    start = time.time() - HISTORY * 60
    for minute in range(HISTORY):
        recent = minute >= HISTORY - 10
        for index, cfg in enumerate(sample):
            n = PER_MINUTE.get(cfg.title_id) or (BUSY if recent else QUIET)
            for k in range(n):
                viewer = int(rng.integers(model.viewers))
                at = start + minute * 60 + k * 60 / n
                res = decider.impression(cfg.title_id, f"v{viewer}", model.context(index, viewer), now=at)
                assert res.impression_id is not None
                if rng.random() < model.click_probability(index, viewer, res.artwork_id):
                    decider.join.click(res.impression_id, now=at + 1.0)
        for k in range(6):  # the hostile title: romance fans click 'kiss', the others 'scream'
            romantic = k % 2 == 0
            ctx = {"romance": 0.9 if romantic else 0.05, HOSTILE_FEATURE: 0.05 if romantic else 0.9}
            at = start + minute * 60 + k * 10
            res = decider.impression(HOSTILE_ID, f"h{minute}-{k}", ctx, now=at)
            assert res.impression_id is not None
            liked = "kiss" if romantic else "scream"
            if rng.random() < (0.5 if res.artwork_id == liked else 0.03):
                decider.join.click(res.impression_id, now=at + 1.0)


@pytest.fixture()
def stack(redis: redis_lib.Redis, redis_server: PrivateRedis) -> Iterator[Stack]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the dashboard's browser tests need Debian's Chromium")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = Settings.load(
        {"redis_url": redis_server.url, "attribution_window": 3.0, "redis_timeout": 2.0}, environ={}
    )
    titles = [*load_catalog(sample_catalog_path()), hostile_title(port)]
    catalog.seed_catalog(redis, titles)
    stop = threading.Event()
    learner_redis = redis_lib.Redis.from_url(redis_server.url)
    learner = threading.Thread(target=Learner(learner_redis, settings).run, args=(stop,), daemon=True)
    learner.start()
    app = create_app({
        "redis_url": redis_server.url, "redis_timeout": 2.0, "attribution_window": 3.0,
        "image_origins": f"http://localhost:{port}",
    })
    server = make_server("127.0.0.1", port, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    try:
        backfill(redis, settings, titles)
        serving.start()
        yield Stack(f"http://127.0.0.1:{port}", port, titles)
    finally:
        server.shutdown()
        stop.set()
        learner.join(10)
        learner_redis.close()
        app.extensions["artbandit"].close()
    assert not learner.is_alive(), "the learner thread did not stop"


def test_segments_thumbnails_and_trends_in_chromium(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
            page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
            page.on("request", lambda r: requested.append(r.url))

            # ---- overview: two sparklines per title, 'rising' on the one title whose traffic rose
            page.goto(f"{stack.base_url}/dashboard")
            rows = page.get_by_test_id("titles-table").locator("tbody tr")
            expect(rows).to_have_count(len(stack.titles))
            rising = {}
            for t in stack.titles:
                row = page.locator(f'tr[data-title-id="{t.title_id}"]')
                trend = row.get_by_test_id("trend")
                rising[t.title_id] = trend.get_attribute("data-rising")
                lines = trend.locator("path.spark-line")
                expect(lines).to_have_count(2)
                for i in range(2):  # real lines across most of the 120-unit sparkline
                    box = lines.nth(i).evaluate("p => { const b = p.getBBox(); return [b.width, b.height]; }")
                    assert box[0] > 90, (t.title_id, i, box)
            assert rising == {t.title_id: "true" if t.title_id == RISING else "false" for t in stack.titles}
            expect(page.locator(f'tr[data-title-id="{RISING}"] .badge.rising')).to_have_text("rising")
            name = page.locator(f'tr[data-title-id="{HOSTILE_ID}"] th a')
            expect(name).to_have_text(HOSTILE_NAME)  # shown as text, not markup
            page.screenshot(path=str(OUTPUT / "insights-overview.png"), full_page=True)

            # ---- the experiment's heatmap: image column heads that load, a row per segment with traffic
            page.goto(f"{stack.base_url}/dashboard/stranger-things")
            heat = page.get_by_test_id("segments-all")
            expect(heat).to_be_visible()
            arts = stack.titles[0].artwork_ids
            heads = heat.locator("thead th.art-head")
            expect(heads).to_have_count(len(arts))
            assert [h.get_attribute("data-artwork") for h in heads.all()] == arts
            for img in heat.locator("thead img").all():
                expect(img).to_be_visible()
                loaded = img.evaluate("i => i.complete && i.naturalWidth > 0")
                assert loaded, img.get_attribute("src")
            expect(heat.locator("thead img")).to_have_count(len(arts))
            segments = [r.get_attribute("data-segment") for r in heat.locator("tbody tr").all()]
            assert set(segments) <= {*stack.titles[0].features, "mixed", "none"} and len(segments) >= 6
            assert heat.locator("td.cell").count() == len(segments) * len(arts)
            # per variant, behind a disclosure: one heatmap per variant, each with its image heads
            page.locator("#segments-by-variant > summary").click()
            variants = [v.name for v in stack.titles[0].variants]
            for i in range(len(variants)):
                table = page.get_by_test_id(f"segments-v{i}")
                expect(table).to_be_visible()
                expect(table.locator("thead img")).to_have_count(len(arts))
            expect(page.locator("#segments-by-variant .heatmap-label")).to_have_text(variants)
            # the control variant (policy fixed on kids-on-bikes) shows it to every segment
            control = page.get_by_test_id(f"segments-v{variants.index('control')}")
            for row in control.locator("tbody tr").all():
                shade = row.locator('td[data-artwork="kids-on-bikes"]').get_attribute("class") or ""
                # fixed policy: 95.8% of the impressions (the rest is the probability floor); with ~45 a
                # segment, a share under 70% (shade below h7) would take 14 floor draws where 2 are expected
                assert any(f"h{level}" in shade.split() for level in (7, 8, 9)), shade
            page.get_by_test_id("segments").screenshot(path=str(OUTPUT / "insights-segments.png"))
            page.screenshot(path=str(OUTPUT / "insights-title.png"), full_page=True)

            # ---- the hostile title: names as text, a configured second origin, an unconfigured one
            page.goto(f"{stack.base_url}/dashboard/{HOSTILE_ID}")
            expect(page.get_by_test_id("title-name")).to_have_text(HOSTILE_NAME)
            heat = page.get_by_test_id("segments-all")
            segment = heat.locator(f'tbody tr[data-segment="{HOSTILE_FEATURE}"] .segment-name')
            expect(segment).to_have_text(HOSTILE_FEATURE)
            assert page.locator("script:not([src])").count() == 0
            for art in ("kiss", "scream"):
                img = heat.locator(f'th[data-artwork="{art}"] img')
                expect(img).to_be_visible()
                assert img.evaluate("i => i.complete && i.naturalWidth > 0"), art
            assert heat.locator('th[data-artwork="scream"] img').get_attribute("src").startswith(
                f"http://localhost:{stack.port}/"
            )
            expect(heat.locator('th[data-artwork="elsewhere"] img')).to_have_count(0)
            expect(heat.locator('th[data-artwork="elsewhere"] .placeholder')).to_be_visible()
            # romance fans click 'kiss', the others 'scream': with 70 minutes of traffic both win clearly
            expect(heat.locator('tr[data-segment="romance"]')).to_have_attribute("data-winner", "kiss")
            expect(heat.locator(f'tr[data-segment="{HOSTILE_FEATURE}"]')).to_have_attribute(
                "data-winner", "scream"
            )
            page.get_by_test_id("segments").screenshot(path=str(OUTPUT / "insights-segments-hostile.png"))
            page.screenshot(path=str(OUTPUT / "insights-hostile.png"), full_page=True)
        finally:
            browser.close()
    assert not [u for u in requested if "images.invalid" in u], "an unconfigured origin was requested"
    assert not problems, "\n".join(problems)


