"""The segment heatmap, artwork thumbnails and overview trends, end to end on the real app and a real
Redis: traffic through POST /impression and /click, pages and /stats read back from the counters."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from service.app import create_app
from service.catalog import load_catalog, parse_title
from service.config import Settings, image_origins
from service.devstack import sample_art
from service.devstack.local_stack import sample_catalog_path
from service.devstack.redis_server import PrivateRedis
from service.reporting import dashboard as view
from service.store import catalog

HOSTILE_NAME = '<img src=x onerror="alert(1)">Saga'
HOSTILE_FEATURE = '<script>alert("seg")</script>|x'
FEATURES = ["romance", HOSTILE_FEATURE]
ARTWORKS = [
    {"id": "kiss", "features": {"romance": 1.0},
     "image_url": "/dashboard/static/art/harbor-lights/couple-at-sunset.svg"},
    {"id": "scream", "features": {HOSTILE_FEATURE: 1.0}, "image_url": "https://img.example.com/scream.png"},
    {"id": "elsewhere", "image_url": "https://evil.example.net/x.png"},
    {"id": "script", "image_url": "javascript:alert(1)"},
]
ORIGINS = "https://img.example.com  http://10.0.0.5:8080"


@pytest.fixture()
def app(redis: redis_lib.Redis, redis_server: PrivateRedis) -> Iterator[Flask]:
    cfg = parse_title("saga", {
        "name": HOSTILE_NAME, "features": FEATURES, "artworks": ARTWORKS,
        "experiment": {"variants": [
            {"name": "explore", "weight": 1, "policy": {"name": "uniform"}},
            {"name": "pinned", "weight": 1, "policy": {"name": "fixed", "params": {"arm": "kiss"}}},
        ]},
    })
    catalog.save_title(redis, cfg)
    app = create_app({
        "redis_url": redis_server.url, "redis_timeout": 2.0, "image_origins": ORIGINS, "TESTING": True,
    })
    yield app
    app.extensions["artbandit"].close()


def drive(client: FlaskClient, n: int = 800, seed: int = 3) -> dict[str, int]:
    """Viewers who love romance click 'kiss' often, viewers of the other taste click 'scream'. (The
    policies draw from OS entropy: n is large enough that ~50 explore impressions per cell separate a 60%
    from a 2% CTR whatever the draws.)"""
    rng = np.random.default_rng(seed)
    shown: dict[str, int] = {}
    for i in range(n):
        romantic = rng.random() < 0.5
        ctx = {"romance": 0.9, HOSTILE_FEATURE: 0.05} if romantic else {"romance": 0.05, HOSTILE_FEATURE: 0.9}
        r = client.post("/impression", json={"title_id": "saga", "user_id": f"u{i}", "context": ctx})
        assert r.status_code == 200, r.get_data(as_text=True)
        body = r.get_json()
        shown[body["artwork_id"]] = shown.get(body["artwork_id"], 0) + 1
        liked = "kiss" if romantic else "scream"
        if rng.random() < (0.6 if body["artwork_id"] == liked else 0.02):
            assert client.post("/click", json={"impression_id": body["impression_id"]}).status_code == 200
    return shown


def test_stats_segments_section(app: Flask) -> None:
    client = app.test_client()
    drive(client)
    doc = client.get("/stats/saga").get_json()
    seg = doc["segments"]
    assert seg["rule"] == {"kind": "dominant", "margin": 0.1, "features": FEATURES}
    assert seg["segments"] == [*FEATURES, "mixed", "none"]
    assert seg["artworks"] == [a["id"] for a in ARTWORKS]
    assert set(seg["by_variant"]) == {"explore", "pinned"}
    # counts add up to the title's totals, per variant
    for v in doc["variants"]:
        rows = seg["by_variant"][v["variant"]]
        assert sum(r["impressions"] for r in rows) == v["impressions"]
        assert sum(r["clicks"] for r in rows) == v["clicks"]
    explore = {r["segment"]: r for r in seg["by_variant"]["explore"]}
    # 60% vs 2% CTR on ~50 impressions per cell: the intervals separate
    assert explore["romance"]["winner"] == "kiss" and explore[HOSTILE_FEATURE]["winner"] == "scream"
    pinned = seg["by_variant"]["pinned"]
    assert all(r["cells"][0]["share"] > 0.9 for r in pinned)  # 'fixed': 'kiss' but for the probability floor
    assert "segment_winner" in doc["methods"] and "rising" in doc["methods"]


def test_title_page_heatmap_with_thumbnails_and_escaped_names(app: Flask) -> None:
    client = app.test_client()
    drive(client)
    r = client.get("/dashboard/saga")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    csp = r.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://img.example.com http://10.0.0.5:8080;" in csp
    # hostile names are text, never markup
    assert HOSTILE_NAME not in page and "<script>alert" not in page
    assert str(escape(HOSTILE_NAME)) in page and str(escape(HOSTILE_FEATURE)) in page
    block = page[page.index('id="segments-all"'):]
    block = block[: block.index("</table>")]
    heads = re.findall(r'<th scope="col" class="art-head" data-artwork="([^"]+)">(.*?)</th>', block, re.S)
    assert [h[0] for h in heads] == [a["id"] for a in ARTWORKS]
    imgs = {a: re.search(r'<img src="([^"]+)"', body) for a, body in heads}
    assert imgs["kiss"] and imgs["kiss"].group(1) == ARTWORKS[0]["image_url"]  # same origin
    assert imgs["scream"] and imgs["scream"].group(1) == ARTWORKS[1]["image_url"]  # configured origin
    assert imgs["elsewhere"] is None and imgs["script"] is None  # placeholders instead
    rows = re.findall(r'<tr data-segment="([^"]+)"(?: data-winner="([^"]+)")?>', block)
    assert (str(escape(HOSTILE_FEATURE)), "scream") in rows and ("romance", "kiss") in rows
    assert block.count('class="star"') == 2
    assert 'id="segments-v0"' in page and 'id="segments-v1"' in page  # per variant, in <details>
    # the thumbnail the page links is served, same origin
    img = client.get(ARTWORKS[0]["image_url"])
    assert img.status_code == 200 and img.mimetype == "image/svg+xml"
    img.close()


def test_overview_has_sparklines(app: Flask) -> None:
    client = app.test_client()
    drive(client, n=50)
    page = client.get("/dashboard").get_data(as_text=True)
    assert page.count('class="spark"') == 2 and 'data-rising="false"' in page
    assert 'data-kind="impressions"' in page and "impressions per minute since" in page


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://img.example.com/a.png", "https://img.example.com/a.png"),
        ("HTTPS://IMG.EXAMPLE.COM/a.png", "HTTPS://IMG.EXAMPLE.COM/a.png"),
        ("http://10.0.0.5:8080/a.png", "http://10.0.0.5:8080/a.png"),
        ("http://10.0.0.5/a.png", None),  # another port is another origin
        ("https://img.example.com.evil.net/a.png", None),
        ("https://user@img.example.com/a.png", None),
        ("/\\evil.net/a.png", None),  # browsers read it as //evil.net
        ("/art/a b.png", None),
        ("ftp://img.example.com/a.png", None),
    ],
)
def test_configured_image_origins(url: str, shown: str | None) -> None:
    assert view.local_image(url, image_origins(ORIGINS)) == shown


@pytest.mark.parametrize("bad", ["https://img.example.com/path", "img.example.com", "https://*.example.com",
                                 "https://a.com;script-src *", "javascript:alert(1)"])
def test_malformed_image_origins_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="image_origins"):
        Settings.load({"image_origins": bad}, environ={})


def test_sample_catalog_images_are_committed_distinct_and_served() -> None:
    titles = load_catalog(sample_catalog_path())
    drawn = sample_art.drawings(titles)
    assert len(drawn) == sum(len(t.artworks) for t in titles)
    for path, text in drawn.items():  # the committed files are exactly what the generator draws
        stale = f"{path} is stale: python -m service.devstack.sample_art"
        assert path.read_text(encoding="utf-8") == text, stale
        assert len(text.encode()) < 4096
    assert len(set(drawn.values())) == len(drawn)
    app = create_app({"TESTING": True})
    client = app.test_client()
    for t in titles:
        for a in t.artworks:
            assert a.image_url == sample_art.image_url(t.title_id, a.id)
            assert view.local_image(a.image_url) == a.image_url
            r = client.get(a.image_url)
            assert r.status_code == 200 and r.mimetype == "image/svg+xml", a.image_url
            r.close()




@pytest.mark.parametrize(
    ("segments", "status", "fragment"),
    [
        ({"rules": [{"name": "<b>fans</b>", "when": {"romance": 0.5}}]}, 200, None),
        ({"margin": 0.25}, 200, None),
        ({"rules": [{"name": "x", "when": {"drama": 0.5}}]}, 400, "segments use features not in the title"),
        ({"rules": [{"name": "none", "when": {"romance": 0.5}}]}, 400, "reserved"),
        ({"margin": 1e400}, 400, "segments.margin"),
        ({"rules": "all"}, 400, "rules"),
        ({"margin": False}, 400, "segments.margin"),  # found by the schema fuzzer: a bool is no number
        ({"rules": [{"name": "x", "when": {"romance": True}}]}, 400, "segments.rules"),
    ],
)
def test_segment_rules_through_the_admin_api(
    redis: redis_lib.Redis, redis_server: PrivateRedis, segments: object, status: int, fragment: str | None
) -> None:
    app = create_app({"redis_url": redis_server.url, "api_key": "k", "redis_timeout": 2.0, "TESTING": True})
    body = {"features": ["romance"], "artworks": [{"id": "a"}], "policy": {"name": "uniform"},
            "segments": segments}  # fmt: skip
    try:
        r = app.test_client().put("/titles/t", json=body, headers={"Authorization": "Bearer k"})
        assert r.status_code == status, r.get_data(as_text=True)
        if fragment is not None:
            assert r.get_json()["error"] and fragment in r.get_json()["message"]
        else:
            assert r.get_json()["title"]["segments"] is not None
    finally:
        app.extensions["artbandit"].close()
