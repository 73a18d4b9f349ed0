"""Catalog strings are data, never markup: a title or feature named `<script>alert(1)</script>` (and other
breakouts) renders as text in /dashboard and /dashboard/<title>, is an exact JSON string in /stats, and
the pages forbid inline script through their Content-Security-Policy anyway."""

from __future__ import annotations

import html
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.security.conftest import ADMIN

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
CLOSE = "</title></script><svg onload=alert(3)>"
PAYLOADS = (SCRIPT, IMG, CLOSE)
TITLE_ID = "xss-title"
TITLE: dict[str, Any] = {
    "name": SCRIPT + " & " + IMG,
    "features": [SCRIPT, IMG, CLOSE],
    "artworks": [
        {"id": "a", "features": {SCRIPT: 1.0}, "image_url": "javascript:alert(4)"},
        {"id": "b", "features": {IMG: 1.0}, "image_url": '/static/x.png" onerror="alert(5)'},
    ],
    "experiment": {
        "salt": SCRIPT,
        "control": "c",
        "variants": [
            {"name": "c", "weight": 1, "policy": {"name": "fixed", "params": {"arm": "a"}}},
            {"name": "u", "weight": 1, "policy": {"name": "uniform"}},
        ],
    },
}


@pytest.fixture()
def seeded(client: FlaskClient) -> FlaskClient:
    assert client.put(f"/titles/{TITLE_ID}", json=TITLE, headers=ADMIN).status_code == 200
    for i in range(40):
        body = {"title_id": TITLE_ID, "user_id": f"u{i}", "context": {SCRIPT: 1.0, IMG: 0.5}}
        answer = client.post("/impression", json=body).get_json()
        assert answer["fallback"] is False, answer
        if i % 3 == 0:
            assert client.post("/click", json={"impression_id": answer["impression_id"]}).status_code == 200
    return client


def assert_inert(page: str) -> None:
    for payload in PAYLOADS:
        assert payload not in page, payload
    # no live tag or attribute: the text may name them, escaped, but never open them
    for marker in ("<script>alert", "<img src=x", "<svg onload", 'src="javascript:', '" onerror="alert'):
        assert marker not in page, marker


@pytest.mark.parametrize("path", ["/dashboard", f"/dashboard/{TITLE_ID}"])
def test_pages_render_catalog_strings_as_text(seeded: FlaskClient, path: str) -> None:
    response = seeded.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert_inert(page)
    assert html.escape(SCRIPT) in page  # the name is shown, escaped
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "text/html"


def test_error_page_escapes_the_requested_title(seeded: FlaskClient) -> None:
    response = seeded.get("/dashboard/%22%3E%3Cimg%20src=x%20onerror=alert(2)%3E")  # IMG, URL-encoded
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert_inert(response.get_data(as_text=True))


def test_a_path_outside_the_dashboard_is_echoed_only_inside_json(seeded: FlaskClient) -> None:
    response = seeded.get("/dashboard/%3Cscript%3Ealert(1)%3C%2Fscript%3E")  # a '/' in it: no page route
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert SCRIPT in response.get_json()["message"]


def test_stats_carry_catalog_strings_as_exact_json_strings(seeded: FlaskClient) -> None:
    response = seeded.get(f"/stats/{TITLE_ID}")
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = response.get_json()
    assert doc["name"] == TITLE["name"]  # escaped for JSON, decoded back exactly: no HTML entities
    assert "&lt;" not in response.get_data(as_text=True)


def test_unknown_title_in_stats_is_a_json_error_that_keeps_the_string_inside_json(
    seeded: FlaskClient,
) -> None:
    response = seeded.get("/stats/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert SCRIPT in response.get_json()["message"]
