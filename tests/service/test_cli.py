"""The `artbandit` command: its help, `serve` under gunicorn with two workers next to `learn`, and `run`
(everything at once) stopping cleanly on Ctrl-C."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from service.cli import build_parser, main
from service.devstack.redis_server import PrivateRedis, free_port
from service.gunicorn_conf import gunicorn_command

KEY = "cli-key"
TITLE = {
    "features": ["romance", "horror"],
    "artworks": [{"id": "kiss", "features": {"romance": 1.0}}, {"id": "scream", "features": {"horror": 1.0}}],
    "policy": {"name": "linucb", "params": {"alpha": 0.2}},
}


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, json.loads(raw) if ctype.startswith("application/json") else raw.decode()
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited with {proc.returncode}"
        try:
            if request(port, "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"nothing ready on port {port} within {timeout}s")


class Output:
    """Collects a child's combined output lines in a thread (so its pipe never fills)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "serve", "learn"):
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE), out


def test_console_script_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "serve" in out.stdout


def test_serve_arguments_reach_gunicorn() -> None:
    args = build_parser(with_simulator=False).parse_args(
        ["serve", "--port", "9001", "--workers", "3", "--host", "0.0.0.0"]
    )
    argv = gunicorn_command(args.host, args.port, args.workers)
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert "0.0.0.0:9001" in argv and "3" in argv and argv[-1] == "service.app:create_app()"


@pytest.fixture()
def child_env(redis_server: PrivateRedis, redis: redis_lib.Redis) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTBANDIT_", "PROMETHEUS_"))}
    env.update(ARTBANDIT_REDIS_URL=redis_server.url, ARTBANDIT_API_KEY=KEY, ARTBANDIT_SNAPSHOT_INTERVAL="0.2")
    return env


@pytest.fixture()
def served(child_env: dict[str, str]) -> Iterator[tuple[int, subprocess.Popen[str], Output]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "2"],
        env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(proc)
    try:
        wait_ready(port, proc)
        yield port, proc, output
    finally:
        stop(proc)


@pytest.mark.slow
def test_serve_under_gunicorn_with_two_workers_and_a_learner(
    served: tuple[int, subprocess.Popen[str], Output], child_env: dict[str, str]
) -> None:
    port, proc, output = served
    assert request(port, "PUT", "/titles/cli-title", TITLE, {"Authorization": f"Bearer {KEY}"})[0] == 200
    learner = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "learn"],
        env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    learner_output = Output(learner)
    try:
        n = 40
        for i in range(n):
            status, body = request(
                port,
                "POST",
                "/impression",
                {"title_id": "cli-title", "user_id": f"u{i}", "context": {"romance": 1.0}},
            )
            assert status == 200 and body["fallback"] is False
            if body["artwork_id"] == "kiss":
                assert request(port, "POST", "/click", {"impression_id": body["impression_id"]})[1] == {
                    "status": "recorded"
                }
        # both workers' counters are summed in one scrape (prometheus multiprocess mode)
        _, metrics = request(port, "GET", "/metrics")
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("artbandit_impressions_total{")
        )
        assert counted == n
        # the learner publishes what the clicks taught it, and the API serves it
        deadline = time.monotonic() + 20
        while (
            request(port, "POST", "/impression", {"title_id": "cli-title", "user_id": "p", "context": {}})[1][
                "model_version"
            ]
            == 0
        ):
            assert time.monotonic() < deadline, learner_output.text
            time.sleep(0.2)
    finally:
        assert stop(learner) == 0, learner_output.text
    assert "learner stopped" in learner_output.text
    assert len(set(re.findall(r"Booting worker with pid: (\d+)", output.text))) == 2
    assert stop(proc) == 0, output.text


@pytest.mark.slow
def test_run_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTBANDIT_", "PROMETHEUS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run", "--port", str(port), "--data-dir", str(tmp_path),
         "--rate", "20"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(proc)
    try:
        wait_ready(port, proc, timeout=60)
        deadline = time.monotonic() + 30
        while "Ctrl-C stops everything" not in output.text:
            assert time.monotonic() < deadline, output.text
            time.sleep(0.1)
        key = re.search(r"admin key\s+(\S+)", output.text)
        redis_url = re.search(r"Redis\s+(redis://\S+)", output.text)
        assert key and redis_url, output.text
        status, titles = request(port, "GET", "/titles", headers={"Authorization": f"Bearer {key.group(1)}"})
        assert status == 200 and "stranger-things" in {t["title_id"] for t in titles["titles"]}
        while (
            request(port, "GET", "/stats/stranger-things")[1]["totals"]["impressions"] == 0
        ):  # demo traffic flows
            assert time.monotonic() < deadline, output.text
            time.sleep(0.2)
    finally:
        code = stop(proc, signal.SIGINT, timeout=45)
    assert code == 0, output.text
    assert "Traceback" not in output.text, output.text
    assert (tmp_path / "redis").is_dir()  # the AOF stays for the next run
    with pytest.raises(redis_lib.ConnectionError):
        redis_lib.Redis.from_url(redis_url.group(1), socket_connect_timeout=1).ping()


def test_demo_viewers_click_what_speaks_to_their_tastes() -> None:
    from service.catalog import load_catalog
    from service.devstack.local_stack import sample_catalog_path
    from simulator.demo import ViewerModel

    titles = load_catalog(sample_catalog_path())
    assert any(t.experiment is not None for t in titles)
    model = ViewerModel.from_catalog(titles, seed=3, viewers=400)
    st = next(i for i, t in enumerate(titles) if t.title_id == "stranger-things")
    assert set(model.context(st, 0)) == set(titles[st].features)  # only the title's own features are sent
    # personalized beats the best single artwork, which beats a random one: there is something to learn
    probs = [[model.click_probability(st, v, a.id) for a in titles[st].artworks] for v in range(400)]
    uniform = sum(sum(row) / len(row) for row in probs) / len(probs)
    best_single = max(sum(col) / len(probs) for col in zip(*probs, strict=True))
    oracle = sum(max(row) for row in probs) / len(probs)
    assert uniform < best_single < oracle and oracle > 1.5 * uniform


def test_run_prints_a_ctr_table_per_variant_and_policy() -> None:
    from service.devstack.local_stack import _ctr_table

    table = _ctr_table(
        "t1",
        [
            {"variant": "control", "policy": "fixed", "impressions": 1000, "clicks": 50, "ctr": 0.05,
             "ctr_ci": [0.0382, 0.0653]},
            {"variant": "linucb", "policy": "linucb", "impressions": 0, "clicks": 0, "ctr": None,
             "ctr_ci": None},
        ],
    )  # fmt: skip
    lines = table.splitlines()
    assert "variant" in lines[0] and "CTR" in lines[0]
    assert lines[1].split()[:5] == ["control", "fixed", "1,000", "50", "5.0%"] and "3.8% – 6.5%" in lines[1]
    assert lines[2].split() == ["linucb", "linucb", "0", "0", "–"]
