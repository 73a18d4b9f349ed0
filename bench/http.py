"""HTTP benchmark: POST /impression (+20% POST /click) against gunicorn, next to a no-op Flask endpoint
served by the same gunicorn settings, in the same run.

    python bench/http.py [--seconds 8] [--rounds 4] [--workers 2] [--connections 32]

Needs `wrk` (Debian: apt-get install wrk). Starts a private redis-server, the API under gunicorn and the
learner (the real system), seeds one title, then:
  1. saturation: `--rounds` rounds, each wrk with N connections as fast as it can against artbandit,
     then against the no-op app -> req/s, p50, p99; the ratio is taken per round;
  2. half load: rounds of wrk paced (Lua `delay()`) at half of artbandit's median saturated rate,
     after one attribution window of artbandit at that rate (the learner labels impressions a window
     after serving them; without it the paced rounds would meet the learner labelling full-load traffic).
The service's attribution window is 30 s so that the learner labels and learns during the run; from the
second saturated round on, artbandit's rounds carry the learner's work on the previous round's traffic.
Rounds alternate between the two servers because this VM's speed drifts by up to a third within a
minute (the same no-op run gave 2,900 and 4,500 req/s minutes apart): a ratio of two runs far apart
in time measures the drift. The table reports medians over rounds (p99: median and worst round).
Prints a markdown table and the ratios; --write appends it to docs/benchmarks.md.
"""

from __future__ import annotations

import sys

# This file is named like the stdlib's `http` package; when run as a script its folder comes first on
# sys.path and would shadow it (urllib imports http.client). Drop the folder, add the repository root.
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("/bench")]

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service import gunicorn_conf
from service.redis_server import PrivateRedis, free_port

FEATURES = ["romance", "comedy", "drama", "horror", "action", "family", "thriller", "scifi"]
ARTWORKS = [{"id": f"art-{i}", "features": {FEATURES[i % len(FEATURES)]: 1.0}} for i in range(8)]
API_KEY = "bench-key"
# Attribution window of the benchmarked service: short, so the learner labels and learns from the
# benchmark's own impressions while it runs (with the 30-minute default it would sit idle).
WINDOW_SECONDS = 30

WRK_SCRIPT = r"""
-- artbandit load: impressions for random viewers; 20%% of requests click a recent impression.
local features = {%(features)s}
local ids = {}
local pace_ms = %(pace_ms)s
math.randomseed(os.time() + math.floor(os.clock() * 1e6))

local function impression()
  local parts = {}
  for i = 1, 3 do
    local f = features[math.random(#features)]
    parts[#parts + 1] = string.format('"%%s": %%.3f', f, math.random())
  end
  local body = string.format('{"title_id": "bench", "user_id": "u%%d", "context": {%%s}}',
                             math.random(100000), table.concat(parts, ", "))
  return wrk.format("POST", "/impression", {["Content-Type"] = "application/json"}, body)
end

request = function()
  if #ids > 0 and math.random() < 0.2 then
    local id = table.remove(ids)
    return wrk.format("POST", "/click", {["Content-Type"] = "application/json"},
                      '{"impression_id": "' .. id .. '"}')
  end
  return impression()
end

response = function(status, headers, body)
  local id = string.match(body, '"impression_id"%%s*:%%s*"([^"]+)"')
  if id and #ids < 1000 then ids[#ids + 1] = id end
end

if pace_ms > 0 then
  delay = function() return pace_ms end
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f %%f %%f %%d\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000.0, latency:percentile(99) / 1000.0, latency.mean / 1000.0,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""

NOOP_APP = """
from flask import Flask, jsonify, request

def create_app():
    app = Flask("noop")

    @app.post("/impression")
    def impression():
        request.get_json()
        return jsonify(impression_id="bench~noop", artwork_id="art-0", propensity=1.0, variant="default",
                       policy="noop", model_version=0, fallback=False)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/click")
    def click():
        request.get_json()
        return jsonify(status="recorded")

    return app
"""


NOOP_WSGI_APP = """
import json

BODY = json.dumps(dict(impression_id="bench~noop", artwork_id="art-0", propensity=1.0, variant="default",
                       policy="noop", model_version=0, fallback=False)).encode()
CLICK = b'{"status": "recorded"}'


def create_app():
    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        json.loads(environ["wsgi.input"].read(length) or b"null")
        body = CLICK if environ["PATH_INFO"] == "/click" else BODY
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app
"""


@dataclass
class Result:
    name: str
    mode: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Summary:
    """Medians over rounds of one server under one load."""

    name: str
    mode: str
    rounds: list[Result]

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.rounds)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.rounds)

    @property
    def worst_p99_ms(self) -> float:
        return max(r.p99_ms for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


def run_wrk(url: str, seconds: int, connections: int, pace_ms: float, tmp: Path, label: str) -> Result:
    script = tmp / f"{label}.lua"
    script.write_text(
        WRK_SCRIPT % {"features": ", ".join(f'"{f}"' for f in FEATURES), "pace_ms": f"{pace_ms:.3f}"}
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", out)
    if not m:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    requests, duration_us = int(m.group(1)), int(m.group(2))
    return Result(
        label.split("-")[0],
        "paced" if pace_ms > 0 else "saturated",
        requests / (duration_us / 1e6),
        float(m.group(3)),
        float(m.group(4)),
        int(m.group(6)),
    )


def start_gunicorn(
    app_spec: str,
    port: int,
    workers: int,
    env: dict[str, str],
    cwd: Path,
    conf: str | None = None,
    threads: int = gunicorn_conf.threads,
) -> subprocess.Popen[bytes]:
    """Every server gets artbandit's production settings (service/gunicorn_conf.py: gthread workers,
    its thread count, HTTP keep-alive, SO_REUSEPORT); artbandit also gets that file's hooks (metrics
    dir, warm-up)."""
    cmd = [sys.executable, "-m", "gunicorn", app_spec]
    if conf:
        cmd += ["-c", conf]
    cmd += [
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "5", "--reuse-port",
        "--backlog", "2048", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def put_title(base: str) -> None:
    body = json.dumps(
        {"features": FEATURES, "artworks": ARTWORKS, "policy": {"name": "linucb", "params": {"alpha": 1.0}}}
    ).encode()
    req = urllib.request.Request(
        f"{base}/titles/bench",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status in (200, 201), resp.status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds per load (medians reported)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--threads",
        type=int,
        default=gunicorn_conf.threads,
        help="gunicorn threads per worker (default: production's, %(default)s)",
    )
    ap.add_argument("--write", action="store_true", help="append the table to docs/benchmarks.md")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    summaries: list[Summary] = []
    ratios: list[float] = []
    wsgi_ratios: list[float] = []
    with PrivateRedis(appendonly=True) as redis_srv, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "noop_app.py").write_text(NOOP_APP)
        (tmp / "noop_wsgi.py").write_text(NOOP_WSGI_APP)
        env = dict(os.environ)
        env.update(
            ARTBANDIT_REDIS_URL=redis_srv.url,
            ARTBANDIT_API_KEY=API_KEY,
            ARTBANDIT_ATTRIBUTION_WINDOW=str(WINDOW_SECONDS),
        )
        metrics_dir = tmp / "prom"
        metrics_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        port_app, port_noop, port_wsgi = free_port(), free_port(), free_port()
        app = start_gunicorn(
            "service.app:create_app()",
            port_app,
            args.workers,
            env,
            ROOT,
            conf="python:service.gunicorn_conf",
            threads=args.threads,
        )
        learner = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "learn"], env=env, cwd=ROOT, start_new_session=True
        )
        noop_env = dict(os.environ, PYTHONPATH=str(tmp))
        noop = start_gunicorn(
            "noop_app:create_app()", port_noop, args.workers, noop_env, tmp, threads=args.threads
        )
        wsgi = start_gunicorn(
            "noop_wsgi:create_app()", port_wsgi, args.workers, noop_env, tmp, threads=args.threads
        )
        try:
            base_app, base_noop = f"http://127.0.0.1:{port_app}", f"http://127.0.0.1:{port_noop}"
            base_wsgi = f"http://127.0.0.1:{port_wsgi}"
            wait_http(f"{base_app}/healthz")
            put_title(base_app)
            time.sleep(1.0)
            # warm-up: fill caches, compile scripts, let the learner publish a first snapshot
            run_wrk(base_app, 3, 8, 0, tmp, "warm-app")
            wait_http(f"{base_noop}/healthz")
            wait_http(f"{base_wsgi}/healthz")
            sat_app, sat_noop = Summary("artbandit", "saturated", []), Summary("noop", "saturated", [])
            sat_wsgi = Summary("noop-wsgi", "saturated", [])
            n, secs = args.connections, args.seconds
            for k in range(args.rounds):
                sat_app.rounds.append(run_wrk(base_app, secs, n, 0, tmp, "artbandit-sat"))
                sat_noop.rounds.append(run_wrk(base_noop, secs, n, 0, tmp, "noop-sat"))
                sat_wsgi.rounds.append(run_wrk(base_wsgi, secs, n, 0, tmp, "noop-wsgi-sat"))
                ratios.append(sat_app.rounds[-1].rps / sat_noop.rounds[-1].rps)
                wsgi_ratios.append(sat_app.rounds[-1].rps / sat_wsgi.rounds[-1].rps)
                print(
                    f"round {k + 1}: artbandit {sat_app.rounds[-1].rps:,.0f} req/s, "
                    f"noop Flask {sat_noop.rounds[-1].rps:,.0f} req/s (ratio {ratios[-1]:.2f}), "
                    f"noop WSGI {sat_wsgi.rounds[-1].rps:,.0f} req/s (ratio {wsgi_ratios[-1]:.2f})",
                    flush=True,
                )
            half = sat_app.rps / 2
            pace_ms = args.connections / half * 1000.0
            # The learner labels impressions one attribution window after they were served, so the
            # first window after the saturated rounds it is still working through full-load traffic.
            # Serve artbandit at half load for one window first: the paced rounds then measure the
            # whole system (API, Redis and learner) at half load, not half-load requests on top of a
            # full-load learner.
            run_wrk(base_app, WINDOW_SECONDS + 2, n, pace_ms, tmp, "artbandit-settle")
            half_app, half_noop = Summary("artbandit", "paced", []), Summary("noop", "paced", [])
            for _ in range(args.rounds):
                half_app.rounds.append(run_wrk(base_app, secs, n, pace_ms, tmp, "artbandit-half"))
                half_noop.rounds.append(run_wrk(base_noop, secs, n, pace_ms, tmp, "noop-half"))
            summaries = [sat_app, sat_noop, half_app, half_noop, sat_wsgi]
        finally:
            for proc in (app, noop, wsgi, learner):
                stop(proc)

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    lines = [
        f"Machine: {os.cpu_count()} cores, {cpu}; gunicorn gthread workers={args.workers} "
        f"x {args.threads} threads, keep-alive, SO_REUSEPORT; "
        f"wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s per row "
        "(medians; p99 also worst round); 80% /impression, 20% /click; "
        "Redis (AOF everysec) and the learner run on the same machine.",
        "",
        "| server | load | req/s | p50 ms | p99 ms | worst p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in summaries:
        lines.append(
            f"| {r.name} | {r.mode} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.worst_p99_ms:.2f} "
            f"| {r.errors} |"
        )
    ratio = statistics.median(ratios)
    lines += [
        "",
        f"Throughput ratio artbandit / no-op Flask endpoint: **{ratio:.2f}×** (median of rounds "
        f"{', '.join(f'{x:.2f}' for x in ratios)}; goal ≥ 0.7×).",
        f"p99 at half saturation ({summaries[2].rps:,.0f} req/s): **{summaries[2].p99_ms:.2f} ms** median, "
        f"{summaries[2].worst_p99_ms:.2f} ms worst round (goal ≤ 15 ms).",
        f"Against a bare WSGI no-op (no framework at all; artbandit serves its two hot routes without "
        f"Flask's request machinery, see service/api/hot.py): **{statistics.median(wsgi_ratios):.2f}×** "
        f"(rounds {', '.join(f'{x:.2f}' for x in wsgi_ratios)}).",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        with open(ROOT / "docs" / "benchmarks.md", "a", encoding="utf-8") as fh:
            fh.write(
                f"\n## HTTP ({time.strftime('%Y-%m-%d')})\n\nCommand: `python bench/http.py`\n\n{table}\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
