"""Admin routes: 401 without the key (with `WWW-Authenticate: Bearer`), 403 with a wrong one, and the key is
compared with `hmac.compare_digest` (constant time), never with `==`."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.security.conftest import ADMIN, API_KEY

ROOT = Path(__file__).resolve().parents[2]
TITLE = {"features": ["romance"], "artworks": [{"id": "a"}, {"id": "b"}], "policy": {"name": "uniform"}}
ADMIN_ROUTES = [
    ("GET", "/titles", None),
    ("GET", "/titles/t1", None),
    ("PUT", "/titles/t1", TITLE),
    ("DELETE", "/titles/t1", None),
]
WRONG = [
    ({}, 401),
    ({"Authorization": "Bearer"}, 401),
    ({"Authorization": "Basic " + API_KEY}, 401),
    ({"Authorization": "Bearer wrong-key"}, 403),
    ({"Authorization": "Bearer " + API_KEY[:-1]}, 403),  # a prefix of the key
    ({"Authorization": "Bearer " + API_KEY + "x"}, 403),  # the key plus one character
    ({"Authorization": "Bearer " + API_KEY.upper()}, 403),
]


def call(client: FlaskClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
@pytest.mark.parametrize(("headers", "status"), WRONG)
def test_admin_routes_refuse_without_the_right_key(
    client: FlaskClient, method: str, path: str, body: Any, headers: dict[str, str], status: int
) -> None:
    response = call(client, method, path, body, headers)
    assert response.status_code == status
    assert response.get_json()["error"] == {401: "unauthorized", 403: "forbidden"}[status]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert API_KEY not in response.get_data(as_text=True)


def test_refused_requests_change_nothing(client: FlaskClient) -> None:
    assert client.put("/titles/t1", json=TITLE, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/titles", headers=ADMIN).get_json()["titles"] == []
    assert client.put("/titles/t1", json=TITLE, headers=ADMIN).status_code == 200
    assert client.delete("/titles/t1", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/titles/t1", headers=ADMIN).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_the_right_key_is_let_through(client: FlaskClient, method: str, path: str, body: Any) -> None:
    client.put("/titles/t1", json=TITLE, headers=ADMIN)
    assert call(client, method, path, body, ADMIN).status_code == 200


def test_the_key_is_compared_with_compare_digest(
    client: FlaskClient, compare_digest_calls: list[tuple[bytes, bytes]]
) -> None:
    calls = compare_digest_calls
    assert client.get("/titles", headers={"Authorization": "Bearer guess"}).status_code == 403
    assert client.get("/titles", headers=ADMIN).status_code == 200
    assert calls == [(b"guess", API_KEY.encode()), (API_KEY.encode(), API_KEY.encode())]


SECRET_NAMES = ("api_key", "dashboard_token", "token", "key", "given", "expected")


def equality_on_secrets(source: str) -> list[str]:
    """`==`/`!=` comparisons where an operand is named like a secret (other than against None or '')."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare) or not any(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(o, ast.Constant) and o.value in (None, "") for o in operands):
            continue
        names = {
            o.id if isinstance(o, ast.Name) else o.attr
            for o in operands
            if isinstance(o, ast.Name | ast.Attribute)
        }
        if names & set(SECRET_NAMES):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_secret_is_compared_with_equality() -> None:
    paths = sorted((ROOT / "service" / "web").glob("*.py"))
    assert ROOT / "service" / "web" / "auth.py" in paths
    for path in paths:
        assert equality_on_secrets(path.read_text()) == [], path


def test_the_equality_scan_can_fail() -> None:
    planted = "def check(token, api_key):\n    return token == api_key\n"
    assert equality_on_secrets(planted) == ["line 2: token == api_key"]
