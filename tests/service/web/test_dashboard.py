"""The dashboard's view-model, SVG charts and blueprint, on a minimal Flask app with a fake data source
(fixed statistics documents; no Redis — this is a view test)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis.exceptions import ConnectionError as RedisConnectionError

from service.config import Settings
from service.reporting import dashboard as view
from service.reporting.stats import overview_row, title_stats
from service.web import dashboard as dashboard_api
from service.web import stats as stats_api

NOW = 1_700_000_000.0
EXPERIMENT: dict[str, Any] = {
    "control": "control",
    "variants": [
        {"name": "control", "weight": 10, "policy": {"name": "fixed", "params": {"artwork": "hero"}}},
        {"name": "explore", "weight": 5, "policy": {"name": "uniform", "params": {}}},
        {"name": "linucb", "weight": 85, "policy": {"name": "linucb", "params": {"alpha": 1.0}}},
    ],
}
TRUE_CTR = {"hero": 0.040, "duo": 0.055, "villain": 0.030, "skyline": 0.072, "logo": 0.045}
SVG_THUMB = (
    "data:image/svg+xml;base64,PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnIHZpZXdCb3g9JzAgMCA2NCAzNic+"
    "PHJlY3Qgd2lkdGg9JzY0JyBoZWlnaHQ9JzM2JyBmaWxsPScjMDA3MkIyJy8+PGNpcmNsZSBjeD0nNDYnIGN5PScxMicgcj0nNycgZmls"
    "bD0nI0YwRTQ0MicvPjwvc3ZnPg=="
)


def sample_raw(
    title_id: str = "space-saga", now: float = NOW, minutes: int = 60, seed: int = 7
) -> dict[str, Any]:
    """A realistic raw document: three variants, five artworks, `minutes` of per-minute series in which
    the LinUCB variant moves from exploring every artwork to exploiting the best one."""
    rng = np.random.default_rng(seed)
    arts = list(TRUE_CTR)
    ctr = np.array([TRUE_CTR[a] for a in arts])
    end = int(now // 60)
    series, totals = [], {v["name"]: {a: [0, 0] for a in arts} for v in EXPERIMENT["variants"]}
    for t in range(minutes):
        minute = end - minutes + 1 + t
        # control: always "hero"; explore: uniform; linucb: softmax with growing confidence
        logits = (t / 4.0) * (ctr - ctr.max()) / 0.01
        probs = {
            "control": np.eye(len(arts))[0],
            "explore": np.full(len(arts), 1 / len(arts)),
            "linucb": np.exp(logits) / np.exp(logits).sum(),
        }
        for name, rate in (("control", 60), ("explore", 30), ("linucb", 510)):
            counts = rng.multinomial(rng.poisson(rate), probs[name])
            for a, n in zip(arts, counts, strict=True):
                if n == 0:
                    continue
                x = int(rng.binomial(n, TRUE_CTR[a]))
                series.append(
                    {"minute": minute, "variant": name, "artwork": a, "impressions": int(n), "clicks": x}
                )
                totals[name][a][0] += int(n)
                totals[name][a][1] += x
    variants = {
        name: {
            "impressions": sum(n for n, _ in by_art.values()),
            "clicks": sum(x for _, x in by_art.values()),
            "artworks": {a: {"impressions": n, "clicks": x} for a, (n, x) in by_art.items() if n},
        }
        for name, by_art in totals.items()
    }
    return {
        "title_id": title_id,
        "name": "Space Saga: The <Return>",
        "variants": variants,
        "series": series,
        "join": {
            "pending": 2950, "clicked": 1800, "defaulted": 31000, "late": 14, "duplicate": 9, "unknown": 1,
        },
        "learner": {
            "lag": 12, "snapshot_age_s": 0.7, "versions": {"control": 1, "explore": 1, "linucb": 3540},
        },
        "artwork_meta": {
            "hero": {"image_url": SVG_THUMB},
            "duo": {"image_url": "https://cdn.example.com/duo.jpg"},
            "villain": {"image_url": None},
            "skyline": {"image_url": "/artwork/skyline.jpg"},
            "logo": {},
        },
        "attribution_window_s": 300,
        "offpolicy": [
            {"variant": "control", "ips": 0.041, "ips_ci": [0.031, 0.052], "snips": 0.040,
             "snips_ci": [0.032, 0.049], "n": 1800},
            {"variant": "linucb", "ips": 0.066, "ips_ci": [0.050, 0.083], "snips": 0.065,
             "snips_ci": [0.052, 0.079], "n": 1800},
        ],
    }


def sample_docs() -> dict[str, dict[str, Any]]:
    main = title_stats(sample_raw(), EXPERIMENT, NOW)
    broken_raw = sample_raw("broken-split", seed=3)
    broken_raw["name"] = "<script>alert(1)</script>"
    broken_raw["variants"]["control"]["impressions"] //= 2  # lost half of control's logging
    broken_raw["learner"]["snapshot_age_s"] = 420.0
    broken = title_stats(broken_raw, EXPERIMENT, NOW)
    empty = {"title_id": "fresh", "variants": {}, "series": [], "join": {}, "learner": {}}
    fresh = title_stats(empty, None, NOW)
    return {d["title_id"]: d for d in (main, broken, fresh)}


class FakeSource:
    """Stands in for the app's `extensions["artbandit"]` object."""

    def __init__(self, docs: dict[str, dict[str, Any]], token: str | None = None) -> None:
        self.docs = docs
        self.settings = Settings(dashboard_token=token, api_key="admin-key")
        self.down = False  # True: behave like an unreachable Redis

    def stats_for(self, title_id: str) -> dict[str, Any] | None:
        if self.down:
            raise RedisConnectionError("connection refused")
        return self.docs.get(title_id)

    def titles_overview(self) -> list[dict[str, Any]]:
        if self.down:
            raise RedisConnectionError("connection refused")
        return [overview_row(d) for d in self.docs.values()]


def make_app(token: str | None = None) -> Flask:
    """The dashboard blueprint, and the stats API blueprint its pages link to, on a bare Flask app."""
    app = Flask(__name__)
    app.extensions["artbandit"] = FakeSource(sample_docs(), token)
    app.register_blueprint(dashboard_api.bp)
    app.register_blueprint(stats_api.bp)
    return app


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    return sample_docs()


@pytest.fixture()
def client() -> FlaskClient:
    return make_app().test_client()


# ------------------------------------------------------------------------------------------ geometry
def _coords(d: str) -> list[list[tuple[float, float]]]:
    """Sub-paths of an M/L/Z path as lists of points."""
    out = []
    for sub in re.findall(r"M[^M]*", d):
        pts = re.findall(r"(-?[\d.]+),(-?[\d.]+)", sub)
        out.append([(float(x), float(y)) for x, y in pts])
    return out


def test_nice_step() -> None:
    assert view.nice_step(0.17) == pytest.approx(0.05)
    assert view.nice_step(1.0) == pytest.approx(0.2)
    assert view.nice_step(0.012) == pytest.approx(0.0025)
    assert view.nice_step(430.0) == pytest.approx(100.0)


def test_ctr_chart_paths_stay_in_the_plot_and_match_the_data(docs: dict) -> None:
    doc = docs["space-saga"]
    t = view.title_view(doc)
    chart = t["ctr_chart"]
    assert [s.key for s in chart.series] == ["control", "explore", "linucb"]
    for s in chart.series:
        non_empty = sum(n > 0 for n in doc["series"]["variants"][s.key]["impressions"])
        assert len(s.points) == non_empty > 0
        assert s.band_d.endswith("Z")
        for sub in _coords(s.line_d) + _coords(s.band_d):
            for x, y in sub:
                assert chart.left - 1e-6 <= x <= chart.right + 1e-6
                assert chart.top - 1e-6 <= y <= chart.bottom + 1e-6
    # y axis: 0% at the bottom, ticks increasing upwards
    ys = [tk.pos for tk in chart.y_ticks]
    assert ys[0] == pytest.approx(chart.bottom) and ys == sorted(ys, reverse=True)
    assert chart.y_ticks[0].label == "0%"
    # the highest CTR point sits where the scale says it should
    lin = doc["series"]["variants"]["linucb"]
    y_max = float(chart.y_ticks[-1].label.rstrip("%")) / 100
    i = max(range(len(lin["ctr"])), key=lambda j: lin["ctr"][j] or -1)
    expected_y = chart.bottom - lin["ctr"][i] / y_max * chart.plot_height
    assert any(abs(p.y - expected_y) < 0.01 for p in chart.series[2].points)
    assert chart.shade is not None  # the last 5 minutes are still inside the attribution window


def test_ctr_chart_breaks_lines_at_empty_buckets() -> None:
    raw = sample_raw(minutes=10)
    gap = int(NOW // 60) - 4
    raw["series"] = [r for r in raw["series"] if r["minute"] != gap]
    doc = title_stats(raw, EXPERIMENT, NOW)
    chart = view.title_view(doc)["ctr_chart"]
    for s in chart.series:
        assert len(_coords(s.line_d)) == 2  # one sub-path each side of the gap


def test_share_chart_stacks_to_one_and_shows_exploitation(docs: dict) -> None:
    t = view.title_view(docs["space-saga"])
    chart = t["share_chart"]
    assert [s.key for s in chart.series] == ["hero", "duo", "villain", "skyline", "logo"]
    top_edge = _coords(chart.series[-1].band_d)
    assert top_edge
    for sub in top_edge:
        half = len(sub) // 2  # the first half of each closed area is its upper edge
        assert all(y == pytest.approx(chart.top, abs=0.1) for _, y in sub[:half])
    # linucb's small multiple: the best artwork ("skyline") is a thin band at first and most of the
    # height at the end
    lin = t["share_by_variant"][2]
    sky = _coords(next(s for s in lin.series if s.key == "skyline").band_d)[0]
    half = len(sky) // 2
    upper, lower = sky[:half], list(reversed(sky[half:]))
    first, last = upper[0][1] - lower[0][1], upper[-1][1] - lower[-1][1]
    assert abs(first) < 0.4 * chart.plot_height < abs(last)


def test_empty_title_renders_empty_charts(docs: dict) -> None:
    t = view.title_view(docs["fresh"])
    assert t["ctr_chart"].empty and t["share_chart"].empty
    assert t["best"] is None and t["srm"] is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("/artwork/a.jpg", "/artwork/a.jpg"),
        ("data:image/png;base64,AAAA", "data:image/png;base64,AAAA"),
        ("https://cdn.example.com/a.jpg", None),
        ("//cdn.example.com/a.jpg", None),
        ("javascript:alert(1)", None),
        (None, None),
        ("", None),
    ],
)
def test_only_local_images_are_loaded(url: str | None, shown: str | None) -> None:
    assert view.local_image(url) == shown


def test_formatting() -> None:
    assert view.pct(0.05123) == "5.12%" and view.pct(None) == "–"
    assert view.pct_interval([0.04, 0.061]) == "4.00 – 6.10%"
    assert view.signed_pct(-0.0659) == "-6.6%" and view.signed_pct(0.2) == "+20.0%"
    assert view.p_value_text(0.0004) == "< 0.001" and view.p_value_text(0.1529) == "0.153"
    assert view.p_clause(0.5512) == "p = 0.551" and view.p_clause(3.21e-9) == "p = 3.2e-09"
    assert view.p_clause(0.0) == "p < 1e-300" and view.p_clause(None) == "p = –"


# ------------------------------------------------------------------------------------------ blueprint
def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def test_overview_lists_titles_with_escaped_names(client: FlaskClient) -> None:
    r = client.get("/dashboard")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert 'data-testid="titles-table"' in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="/dashboard/broken-split"' in html
    assert html.count(">SRM</span>") == 1  # only the broken split


def test_title_page_has_every_panel(client: FlaskClient, docs: dict) -> None:
    r = client.get("/dashboard/space-saga")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    for testid in ("totals", "variants-table", "srm", "ctr-chart", "share-chart", "artworks-table",
                   "offpolicy-table", "learner-health", "join-outcomes", "ctr-legend", "share-legend"):
        assert f'data-testid="{testid}"' in html, testid
    assert "Space Saga: The &lt;Return&gt;" in html
    assert 'data-flagged="false"' in html
    # every chart is well-formed SVG with data-bearing paths and accessible names
    svgs = _svgs(html)
    assert len(svgs) >= 2 + 3
    ns = "{http://www.w3.org/2000/svg}"
    for svg in svgs:
        if svg.get("class", "").startswith("swatch"):
            continue
        assert svg.get("role") == "img" and svg.get("aria-labelledby")
        assert svg.find("title") is not None or svg.find(f"{ns}title") is not None
    ctr = next(s for s in svgs if s.get("id") == "ctr-chart")
    lines = [p for p in ctr.iter("path") if p.get("class") == "line"]
    assert {p.get("data-series") for p in lines} == {"control", "explore", "linucb"}
    assert all(len(p.get("d", "")) > 50 for p in lines)


def test_thumbnails_fall_back_to_placeholders(client: FlaskClient) -> None:
    html = client.get("/dashboard/space-saga").get_data(as_text=True)
    assert "cdn.example.com" not in html  # an external URL is never requested
    imgs = re.findall(r"<img [^>]*>", html)
    assert len(imgs) == 2  # the data: thumbnail and the same-origin one
    assert all("data-fallback" in i for i in imgs)
    placeholders = re.findall(r'<div class="placeholder [^"]*"( hidden)?[^>]*>([^<]*)</div>', html)
    assert sorted(text for _, text in placeholders) == sorted(["hero", "duo", "villain", "skyline", "logo"])
    assert sum(1 for hidden, _ in placeholders if hidden) == 2  # shown only if the image fails


def test_srm_warning_and_health_warning(client: FlaskClient) -> None:
    html = client.get("/dashboard/broken-split").get_data(as_text=True)
    assert 'data-flagged="true"' in html and "Sample-ratio mismatch" in html
    assert re.search(r"df = 2, p = [0-9.]+e-\d+, below the threshold 0.001", html)
    assert 'data-ok="false"' in html and "last snapshot is 420 s old" in html
    assert "&lt;script&gt;" in html and "<script>alert" not in html


def test_empty_title_page(client: FlaskClient) -> None:
    r = client.get("/dashboard/fresh")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "no traffic yet" in html and 'data-testid="offpolicy-table"' not in html


@pytest.mark.parametrize("path", ["/dashboard/nope", "/dashboard/%3Cscript%3E", "/dashboard/" + "x" * 65])
def test_unknown_title_is_an_html_404(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert 'data-status="404"' in r.get_data(as_text=True)
    assert "<script>" not in r.get_data(as_text=True).split("</head>")[1]


def test_json_link_serves_the_page_numbers(client: FlaskClient, docs: dict) -> None:
    html = client.get("/dashboard/space-saga").get_data(as_text=True)
    json_url = re.search(r'href="([^"]+)" data-testid="json-link"', html)
    assert json_url and json_url.group(1) == "/stats/space-saga"
    r = client.get(json_url.group(1))
    assert r.status_code == 200 and r.get_json() == docs["space-saga"]


def test_store_down_is_a_503_page() -> None:
    app = make_app()
    app.extensions["artbandit"].down = True
    for path in ("/dashboard", "/dashboard/space-saga"):
        r = app.test_client().get(path)
        assert r.status_code == 503 and r.mimetype == "text/html" and r.headers["Retry-After"] == "1"
        assert "store_unavailable" in r.get_data(as_text=True)


def test_security_headers_and_static_assets(client: FlaskClient) -> None:
    r = client.get("/dashboard/space-saga")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Referrer-Policy"] == "no-referrer" and r.headers["Cache-Control"] == "no-store"
    for asset, kind in (("dashboard.css", "text/css"), ("dashboard.js", "javascript")):
        a = client.get(f"/dashboard/static/{asset}")
        assert a.status_code == 200 and kind in a.content_type
        a.close()
    html = r.get_data(as_text=True)
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html


TOKEN_CASES = [
    ({}, 401),
    ({"query_string": {"token": "wrong"}}, 403),
    ({"headers": {"Authorization": "Bearer wrong"}}, 403),
    ({"headers": {"Authorization": "Basic czNjcmV0"}}, 401),
    ({"query_string": {"token": "s3cret"}}, 200),
    ({"headers": {"Authorization": "Bearer s3cret"}}, 200),
    ({"headers": {"Authorization": "Bearer admin-key"}}, 200),
]


@pytest.mark.parametrize(("kwargs", "status"), TOKEN_CASES)
@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/space-saga"])
def test_viewer_token(path: str, kwargs: dict, status: int) -> None:
    client = make_app(token="s3cret").test_client()
    r = client.get(path, **kwargs)
    assert r.status_code == status
    if status != 200:
        assert "s3cret" not in r.get_data(as_text=True)
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_is_kept_on_links_and_static_needs_none() -> None:
    client = make_app(token="s3cret").test_client()
    html = client.get("/dashboard", query_string={"token": "s3cret"}).get_data(as_text=True)
    assert 'href="/dashboard/space-saga?token=s3cret"' in html
    page = client.get("/dashboard/space-saga", query_string={"token": "s3cret"}).get_data(as_text=True)
    assert 'href="/stats/space-saga?token=s3cret"' in page
    assert client.get("/dashboard/static/dashboard.css").status_code == 200


def test_no_nan_anywhere_in_rendered_numbers(client: FlaskClient) -> None:
    for path in ("/dashboard", "/dashboard/space-saga", "/dashboard/broken-split", "/dashboard/fresh"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"\bnan\b|\binf\b", html, flags=re.I), path


def test_a_single_bucket_still_draws_areas_and_bands() -> None:
    m = int(NOW // 60)
    raw = {
        "title_id": "one", "variants": {"a": {"impressions": 10, "clicks": 1, "artworks": {
            "x": {"impressions": 6, "clicks": 1}, "y": {"impressions": 4, "clicks": 0}}}},
        "series": [{"minute": m, "variant": "a", "artwork": "x", "impressions": 6, "clicks": 1},
                   {"minute": m, "variant": "a", "artwork": "y", "impressions": 4, "clicks": 0}],
        "join": {}, "learner": {},
    }
    t = view.title_view(title_stats(raw, None, NOW))
    x_area, y_area = (_coords(s.band_d)[0] for s in t["share_chart"].series)
    assert len(x_area) == 4 and x_area[0][0] == pytest.approx(t["share_chart"].left)  # spans the whole bucket
    assert x_area[1][0] == pytest.approx(t["share_chart"].right)
    assert y_area[0][1] == pytest.approx(t["share_chart"].top)  # 60% + 40% reach the top
    band = _coords(t["ctr_chart"].series[0].band_d)[0]
    assert len(band) == 4 and band[0][0] < band[1][0]  # a bar, not a zero-width sliver
