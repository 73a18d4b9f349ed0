"""Schemathesis against the live service's own /openapi.json, every check on: no server error, every
status code, content type, header and body as documented, invalid input rejected, valid input accepted,
admin routes refusing requests without the key (`ignored_auth`). A fourth run does all that with client
keys on: each operation gets the key of its security scheme (admin or client), and `ignored_auth` checks
that the data-plane routes refuse requests without theirs.

It runs the schemathesis CLI (its pytest plugin does not load on this pytest) against a werkzeug server
in this process, bounded by examples per operation. The only exemptions are in schemathesis.toml next to
this file (rules JSON Schema cannot state). A second run fuzzes with Redis stopped, where 503 is the
documented answer; a third plants a schema violation to show the run can fail.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from service.app import create_app
from service.devstack.redis_server import PrivateRedis
from service.store import keys
from tests.faults.stack import http_json
from tests.security.live_server import serve

KEY = "fuzz-admin-key"
CLIENT_KEY = "fuzz-client-key"
# keys per security scheme of /openapi.json (instead of one header for every operation)
KEYED = f"""
[auth.openapi.apiKey]
bearer = "{KEY}"

[auth.openapi.clientKey]
bearer = "{CLIENT_KEY}"
"""
CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# the examples in the schema use this title and these features: make them valid
TITLE = {
    "features": ["romance", "horror"],
    "artworks": [{"id": "kiss", "features": {"romance": 1.0}}, {"id": "scream"}],
    "policy": {"name": "linucb"},
}
DEGRADED = """
[checks.not_a_server_error]
expected-statuses = ["1xx", "2xx", "3xx", "4xx", "503"]  # Redis is down: 503 is the documented answer
"""


def schemathesis(
    port: int, cwd: Path, *args: str, config: Path = CONFIG, header: bool = True
) -> tuple[int, str]:
    """`header`: send the admin key on every operation (else the config's auth section gives the keys)."""
    argv = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color",
        "run", f"http://127.0.0.1:{port}/openapi.json",
        *(("-H", f"Authorization: Bearer {KEY}") if header else ()),
        "--seed", "20240601", "--generation-database", "none", "--workers", "1", "--request-timeout", "10",
        *args,
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def generated(output: str) -> int:
    """The 'N generated' count of the summary line."""
    for line in output.splitlines():
        words = line.split()
        if "generated," in words:
            return int(words[words.index("generated,") - 1])
    raise AssertionError(f"no summary in the output:\n{output[-3000:]}")


@pytest.fixture()
def live(redis: Any, redis_server: PrivateRedis) -> Iterator[int]:
    app = create_app({"redis_url": redis_server.url, "api_key": KEY})
    with serve(app) as port:
        status, body = http_json(
            port, "PUT", "/titles/stranger-things", TITLE, {"Authorization": f"Bearer {KEY}"}
        )
        assert status == 200, body
        yield port
    app.extensions["artbandit"].close()


@pytest.mark.slow
def test_every_check_passes_against_the_live_service(live: int, tmp_path: Path) -> None:
    code, output = schemathesis(live, tmp_path, "--checks", "all", "--max-examples", "50")
    assert code == 0, output[-6000:]
    assert generated(output) > 300, output[-3000:]


@pytest.mark.slow
def test_every_check_passes_with_client_keys_on(
    redis: redis_lib.Redis, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    settings = {"redis_url": redis_server.url, "api_key": KEY, "client_keys": f"other-key,{CLIENT_KEY}"}
    app = create_app(settings)
    config = tmp_path / "keyed.toml"
    config.write_text(CONFIG.read_text() + KEYED)
    try:
        with serve(app) as port:
            admin = {"Authorization": f"Bearer {KEY}"}
            assert http_json(port, "PUT", "/titles/stranger-things", TITLE, admin)[0] == 200
            body = {"title_id": "stranger-things", "user_id": "u", "context": {"romance": 1.0}}
            assert http_json(port, "POST", "/impression", body)[0] == 401  # the keys are really on
            code, output = schemathesis(
                port, tmp_path, "--checks", "all", "--max-examples", "30", config=config, header=False
            )
            decided = redis.xlen(keys.decisions_stream("stranger-things"))
    finally:
        app.extensions["artbandit"].close()
    assert code == 0, output[-6000:]
    assert generated(output) > 200, output[-3000:]
    assert decided > 0  # the client key got the fuzzer's valid requests through


@pytest.mark.slow
def test_with_redis_down_every_answer_is_documented(tmp_path: Path) -> None:
    server = PrivateRedis().start()
    app = create_app({"redis_url": server.url, "api_key": KEY})
    try:
        with serve(app) as port:
            assert (
                http_json(port, "PUT", "/titles/stranger-things", TITLE, {"Authorization": f"Bearer {KEY}"})[
                    0
                ]
                == 200
            )
            server.stop()
            assert http_json(port, "GET", "/titles", headers={"Authorization": f"Bearer {KEY}"})[0] == 503
            config = tmp_path / "degraded.toml"
            config.write_text(CONFIG.read_text() + DEGRADED)
            phases = "examples,coverage,fuzzing"
            args = ("--checks", "all", "--max-examples", "15", "--phases", phases)
            code, output = schemathesis(port, tmp_path, *args, config=config)
    finally:
        server.stop()
        app.extensions["artbandit"].close()
    assert code == 0, output[-6000:]
    assert generated(output) > 100, output[-3000:]


@pytest.mark.slow
def test_a_planted_schema_violation_is_caught(
    redis: redis_lib.Redis, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    app = create_app({"redis_url": redis_server.url, "api_key": KEY})
    original = app.wsgi_app

    def broken(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/healthz":  # answers a status the schema does not allow
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "fine, thanks"}']
        return original(environ, start_response)

    app.wsgi_app = broken  # type: ignore[method-assign]
    with serve(app) as port:
        code, output = schemathesis(port, tmp_path, "--checks", "all", "--max-examples", "3",
                                    "--include-operation-id", "healthz")  # fmt: skip
    app.extensions["artbandit"].close()
    assert code != 0, output[-3000:]
    assert "Response violates schema" in output, output[-3000:]
