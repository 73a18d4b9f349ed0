"""The HTTP driver against a real service (Flask app on a private Redis, served by werkzeug in a thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import redis as redis_lib
from werkzeug.serving import make_server

from service.app import create_app
from service.config import Settings
from service.devstack.redis_server import PrivateRedis, free_port
from service.learning.learner import Learner
from service.store import catalog, keys
from simulator.cli import main
from simulator.config import WorldConfig
from simulator.demo import DemoTraffic, ViewerModel
from simulator.export import export_from_redis
from simulator.http_driver import HttpSettings, run_http
from simulator.inprocess import RunSettings, run_inprocess
from simulator.logs import read_logs
from simulator.replay import evaluate
from simulator.world import World

API_KEY = "test-admin-key"


@contextmanager
def serving(redis_url: str, **settings: object) -> Iterator[str]:
    """The real Flask app on a private port, in a thread, until the block ends. A patient Redis timeout
    (2 s): on a busy machine the default 50 ms turns some requests into fallbacks and 503s, and no test
    here is about degraded mode."""
    app = create_app(
        {"redis_url": redis_url, "api_key": API_KEY, "TESTING": True, "redis_timeout": 2.0, **settings}
    )
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture()
def service_url(redis_server: PrivateRedis, redis: redis_lib.Redis) -> Iterator[str]:
    with serving(redis_server.url) as url:
        yield url


WORLD = WorldConfig(titles=2, artworks=3, tastes=4, viewers=100, rate=150.0, click_delay_median=5.0, seed=3)


def test_http_driver_runs_against_the_real_service(service_url: str, redis: redis_lib.Redis) -> None:
    world = World.generate(WORLD)
    settings = HttpSettings(
        base_url=service_url,
        impressions=300,
        concurrency=8,
        time_scale=0.01,
        api_key=API_KEY,
        buckets=5,
        seed=2,
    )
    result = run_http(world, "linucb", {"alpha": 1.0}, settings)
    extra = result.extra
    assert extra["answered"] == 300
    assert not [k for k in extra if "error" in k or "http_" in k], extra
    assert extra.get("fallback", 0) == 0
    # delays are tiny next to the service's 30-minute window: every click is joined and recorded
    assert extra["clicks_sent"] > 10
    assert extra["click_recorded"] == extra["clicks_sent"]
    assert result.summary["ctr"] * 300 == pytest.approx(extra["click_recorded"])
    # the service logged one decision per impression
    assert sum(redis.xlen(keys.decisions_stream(t)) for t in world.title_ids) == 300
    # same metrics as the in-process driver, on the same world and traffic
    local = run_inprocess(world, "uniform", {}, RunSettings(impressions=300, buckets=5, seed=2))
    assert set(result.summary) == set(local.summary)
    assert result.summary["oracle_ctr"] == pytest.approx(local.summary["oracle_ctr"], abs=1e-12)


def test_http_driver_and_demo_traffic_send_the_client_key(
    redis_server: PrivateRedis, redis: redis_lib.Redis
) -> None:
    """A service with client keys: the drivers get through with the key, and only with it."""
    world = World.generate(WORLD)
    with serving(redis_server.url, client_keys="sim-client-key") as url:
        keyed = HttpSettings(
            base_url=url, impressions=40, concurrency=4, time_scale=0.01, api_key=API_KEY, seed=2,
            client_key="sim-client-key",
        )  # fmt: skip
        extra = run_http(world, "linucb", {}, keyed).extra
        assert extra["answered"] == 40 and not [k for k in extra if "error" in k or "http_" in k], extra
        unkeyed = run_http(world, "linucb", {}, replace(keyed, client_key=None)).extra
        assert unkeyed.get("answered", 0) == 0, unkeyed
        pages = run_http(world, "linucb", {}, replace(keyed, page_size=2)).extra  # POST /impressions
        assert pages["answered"] == 40 and not [k for k in pages if "error" in k or "http_" in k], pages
        assert pages["requests"] < 40

        model = ViewerModel.from_catalog(catalog.list_titles(redis))
        demo = DemoTraffic(url, model, rate=200.0, threads=2, client_key="sim-client-key").start()
        deadline = time.monotonic() + 20
        while demo.counters.snapshot()["impressions"] < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        demo.stop()
        counts = demo.counters.snapshot()
        assert counts["impressions"] >= 20 and counts["errors"] == 0, counts


def test_http_driver_refuses_without_admin_key(service_url: str) -> None:
    world = World.generate(WORLD)
    settings = HttpSettings(base_url=service_url, impressions=10, api_key=None)
    with pytest.raises(RuntimeError, match="PUT /titles/title-001 answered 401"):
        run_http(world, "linucb", {}, settings)


def test_export_writes_what_the_service_logged_and_replay_reads_it(
    redis_server: PrivateRedis, redis: redis_lib.Redis, tmp_path: Path
) -> None:
    """Served with a 1-second window: after the window the learner's sweep labels every impression, and
    export writes each decision once with its outcome, in Parquet and DSJSON; replay evaluates both."""
    world = World.generate(WORLD)
    with serving(redis_server.url, attribution_window=1.0) as url:
        settings = HttpSettings(
            base_url=url, impressions=200, concurrency=8, time_scale=0.01, api_key=API_KEY
        )
        result = run_http(world, "uniform", {}, settings)
    time.sleep(1.2)
    Learner(redis, Settings.load({"redis_url": redis_server.url, "attribution_window": 1.0})).step()
    recorded = result.extra["click_recorded"]
    for name in ("logs.parquet", "logs.dsjson"):
        path = tmp_path / name
        assert export_from_redis(redis_server.url, path) == 200
        logs = read_logs(path)
        assert len(logs) == 200 and logs.reward.sum() == recorded
        assert sorted(set(logs.title.tolist())) == world.title_ids
        assert set(logs.features) == set(world.feature_names)
        assert logs.probabilities is not None and (logs.propensity == 1 / 3).all()
        estimates = {e.estimator: e for e in evaluate(logs, "uniform").estimates}
        assert estimates["ips"].value == pytest.approx(recorded / 200)


def test_simulate_command_drives_the_service(service_url: str, tmp_path: Path) -> None:
    out = tmp_path / "http"
    argv = ["simulate", "--target", service_url, "--api-key", API_KEY, "--policies", "linucb,uniform",
            "--impressions", "150", "--time-scale", "0.01", "--concurrency", "8", "--buckets", "3",
            "--no-progress", "--out", str(out), "--set", "titles=2", "--set", "artworks=3",
            "--set", "tastes=4", "--set", "viewers=100", "--set", "rate=150"]  # fmt: skip
    assert main(argv) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert runs["driver"].tolist() == ["http", "http"] and (runs["answered"] == 150).all()


def test_tune_runs_on_exported_service_logs(
    redis_server: PrivateRedis, redis: redis_lib.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`artbandit tune` on what the service logged (uniform variant, exported): every setting gets a DR
    estimate inside its bounded interval, the gate is applied as documented, and the JSON says so."""
    world = World.generate(WORLD)
    with serving(redis_server.url, attribution_window=1.0) as url:
        settings = HttpSettings(
            base_url=url, impressions=300, concurrency=8, time_scale=0.01, api_key=API_KEY
        )
        run_http(world, "uniform", {}, settings)
    time.sleep(1.2)
    Learner(redis, Settings.load({"redis_url": redis_server.url, "attribution_window": 1.0})).step()
    path = tmp_path / "logs.parquet"
    exported = export_from_redis(redis_server.url, path)  # fallback answers (a loaded machine) are not logged
    assert exported > 100
    logged = float(read_logs(path).reward.mean())
    argv = ["tune", str(path), "--policy", "linucb", "--grid", "alpha=0.1,1,3", "--block", "10", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == exported and out["logged_value"] == pytest.approx(logged)
    assert out["confidence"] == pytest.approx(1 - 0.05 / 3)
    assert [s["params"] for s in out["settings"]] == [{"alpha": 0.1}, {"alpha": 1}, {"alpha": 3}]
    for s in out["settings"]:
        assert 0.0 <= s["ci_low"] <= s["dr"] <= s["ci_high"] <= 1.0
        assert s["passes_gate"] == (s["ci_low"] > out["logged_value"])
    passing = [s for s in out["settings"] if s["passes_gate"]]
    assert out["recommended"] == (max(passing, key=lambda s: s["dr"]) if passing else None)


PAGE_WORLD = WorldConfig(
    titles=25, artworks=4, tastes=4, viewers=500, rate=500.0, click_delay_median=5.0, seed=5
)


def test_http_driver_drives_pages(redis_server: PrivateRedis, redis: redis_lib.Redis) -> None:
    """Pages of 20 titles per POST /impressions: every impression answered and logged once; the served
    click-through rate of the uniform policy is that of the in-process driver on the same world and seed
    (expected CTR within 5%; the realized CTR within 4 standard errors)."""
    world = World.generate(PAGE_WORLD)
    n = 3000
    with serving(redis_server.url) as url:
        settings = HttpSettings(
            base_url=url, impressions=n, concurrency=8, time_scale=0.001, api_key=API_KEY, seed=4,
            page_size=20,
        )  # fmt: skip
        served = run_http(world, "uniform", {}, settings)
    extra = served.extra
    assert extra["answered"] == n and extra["requests"] < n / 2  # pages (a repeated title starts a new one)
    assert not [k for k in extra if "error" in k or "http_" in k], extra
    assert sum(redis.xlen(keys.decisions_stream(t)) for t in world.title_ids) == n
    local = run_inprocess(world, "uniform", {}, RunSettings(impressions=n, buckets=5, seed=4))
    assert served.summary["expected_ctr"] == pytest.approx(local.summary["expected_ctr"], rel=0.05)
    p = local.summary["expected_ctr"]
    assert abs(served.summary["ctr"] - local.summary["ctr"]) < 4 * (2 * p * (1 - p) / n) ** 0.5
