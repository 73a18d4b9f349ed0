"""Secrets come only from the environment and never come back out: the admin key is not in any answer,
page, header, metric or log line; a Redis password is redacted from the learner's log; deploy files hold
no secret values."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import yaml
from flask import Flask

from service.app import create_app
from service.config import Settings
from service.devstack.redis_server import PrivateRedis
from tests.security.conftest import ADMIN, API_KEY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_TOKEN = "sec-dash-41c7e0d2a9"
TITLE = {
    "name": "T",
    "features": ["romance"],
    "artworks": [{"id": "a"}, {"id": "b"}],
    "policy": {"name": "linucb"},
}


def test_secrets_have_no_default_and_come_from_the_environment() -> None:
    assert Settings().api_key is None and Settings().dashboard_token is None
    settings = Settings.load(environ={"ARTBANDIT_API_KEY": "from-env", "ARTBANDIT_DASHBOARD_TOKEN": "t"})
    assert settings.api_key == "from-env" and settings.dashboard_token == "t"


def test_deploy_files_hold_no_secret_values() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        env = service.get("environment") or {}
        for name in ("ARTBANDIT_API_KEY", "ARTBANDIT_DASHBOARD_TOKEN"):
            if name in env:
                assert str(env[name]).startswith("${"), f"{name} must come from the caller's environment"
    anchors = compose.get("x-artbandit", {}).get("environment", {})
    assert str(anchors.get("ARTBANDIT_API_KEY", "${")).startswith("${")
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0] in ("ENV", "ARG"):
            assert not any(s in line.upper() for s in ("API_KEY", "TOKEN", "PASSWORD", "SECRET")), line


@pytest.fixture()
def guarded(redis: Any, redis_server: PrivateRedis) -> Flask:
    return create_app({"redis_url": redis_server.url, "api_key": API_KEY, "dashboard_token": DASHBOARD_TOKEN})


def test_the_admin_key_is_never_echoed_or_logged(guarded: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = guarded.test_client()
    wrong = {"Authorization": "Bearer " + API_KEY[:-2] + "zz"}
    answers = [
        client.put("/titles/t1", json=TITLE, headers=ADMIN),
        client.put("/titles/t1", json=TITLE, headers=wrong),
        client.get("/titles", headers=ADMIN),
        client.get("/titles/t1", headers=ADMIN),
        client.get("/titles/nope", headers=ADMIN),
        client.get("/titles"),
        client.post("/impression", json={"title_id": "t1", "user_id": "u", "context": {"romance": 1.0}}),
        client.post("/impression", data="{not json", content_type="application/json", headers=ADMIN),
        client.post("/click", json={"impression_id": "t1~1~0000000000000000"}, headers=ADMIN),
        client.get("/metrics", headers=ADMIN),
        client.get("/openapi.json", headers=ADMIN),
        client.get("/stats/t1", headers=ADMIN),
        client.get("/dashboard", headers=ADMIN),
        client.get("/dashboard/t1", headers=ADMIN),
        client.get("/dashboard/t1", query_string={"token": DASHBOARD_TOKEN}),
        client.get("/dashboard", query_string={"token": API_KEY}),  # refused: the admin key is header-only
        client.get("/stats/t1", query_string={"token": API_KEY}),
        client.delete("/impression", headers=ADMIN),
        client.get("/no/such/route", headers=ADMIN),
    ]
    statuses = [a.status_code for a in answers]
    assert 200 in statuses and 403 in statuses and 500 not in statuses, statuses
    assert answers[-4].status_code == 403 and answers[-3].status_code == 403
    for answer in answers:
        assert API_KEY not in answer.get_data(as_text=True), answer.request.path
        assert all(API_KEY not in value for _, value in answer.headers.items()), answer.request.path
    for record in caplog.records:
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert API_KEY not in text, record.name


def test_a_redis_password_is_redacted_from_the_learner_log(tmp_path: Path) -> None:
    password = "redis-pw-8d3f1b"
    with PrivateRedis() as server:
        r = redis_lib.Redis.from_url(server.url)
        r.config_set("requirepass", password)
        r.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARTBANDIT_")}
        env["ARTBANDIT_REDIS_URL"] = f"redis://:{password}@127.0.0.1:{server.port}/0"
        log = tmp_path / "learner.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "service.cli", "learn"], env=env, stdout=out,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while "learner started" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    text = log.read_text()
    assert password not in text and "redis://***@127.0.0.1" in text, text
    assert proc.returncode == 0, text
