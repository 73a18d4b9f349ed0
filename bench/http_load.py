"""HTTP benchmark: POST /impression (+20% POST /click) against gunicorn, next to a no-op Flask endpoint
served by the same gunicorn settings, in the same run.

    python bench/http_load.py [--seconds 8] [--rounds 6] [--workers 2] [--connections 32] [--client-keys]

Needs `wrk` (Debian: apt-get install wrk). Starts a private redis-server, the API under gunicorn and the
learner (the real system), seeds one title, then:
  1. saturation: `--rounds` rounds, each wrk with N connections as fast as it can against artbandit,
     then against the no-op Flask app, the no-op Flask app plus one round trip to Redis (an empty
     script, through artbandit's request-path client) and a bare WSGI no-op -> req/s, p50, p99; the
     ratios are taken per round;
  2. half load: rounds of wrk paced (Lua `delay()`) at half of artbandit's median saturated rate,
     artbandit then the no-op Flask app.
Every artbandit round is measured in the steady state of the whole system, learner included: the
service's attribution window is WINDOW_SECONDS, and each artbandit round first serves one window at the
round's rate unmeasured, so that during the measured seconds the learner labels and learns, every
moment, what was served one window earlier at the same rate — what it does in production at a steady
load. After the measured seconds the benchmark waits until the learner has labelled the round's
impressions, so none of artbandit's work spills into a no-op round.
Rounds alternate between the servers because a VM's speed drifts by up to a third within a minute
(the same no-op run gave 2,900 and 4,500 req/s minutes apart): a ratio of two runs far apart in time
measures the drift. The table reports medians over rounds (p99: median and worst round); each round
also reads the CPU that artbandit's processes (API workers, Redis, learner) and the no-op's workers
used per request (/proc), which shows where the time goes.
With --client-keys the API requires client keys (ARTBANDIT_CLIENT_KEYS, two of them, the one sent
last) and every request, to every server, carries `Authorization: Bearer <key>`, so the ratios include
the key check and the no-op baselines parse the same header.
Prints a markdown table and the ratios; --write appends it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

from service import gunicorn_conf
from service.devstack.redis_server import PrivateRedis, free_port
from service.store import keys

ROOT = Path(__file__).resolve().parents[1]

FEATURES = ["romance", "comedy", "drama", "horror", "action", "family", "thriller", "scifi"]
ARTWORKS = [{"id": f"art-{i}", "features": {FEATURES[i % len(FEATURES)]: 1.0}} for i in range(8)]
API_KEY = "bench-key"
CLIENT_KEYS = ("bench-client-old-4b7e1c9a2f", "bench-client-new-8d3a6f0e5c")  # --client-keys: the 2nd is sent
# Attribution window of the benchmarked service: short, so the learner labels and learns from the
# benchmark's own impressions while it runs (with the 30-minute default it would sit idle), and so that
# each artbandit round reaches the learner's steady state after a short unmeasured lead (see above).
# The learner's work per label does not depend on the window; Redis's pending set is smaller with it.
WINDOW_SECONDS = 3

WRK_SCRIPT = r"""
-- artbandit load: impressions for random viewers; 20%% of requests click a recent impression.
local features = {%(features)s}
local ids = {}
local pace_ms = %(pace_ms)s
local headers = {["Content-Type"] = "application/json"%(auth)s}
math.randomseed(os.time() + math.floor(os.clock() * 1e6))

local function impression()
  local parts = {}
  for i = 1, 3 do
    local f = features[math.random(#features)]
    parts[#parts + 1] = string.format('"%%s": %%.3f', f, math.random())
  end
  local body = string.format('{"title_id": "bench", "user_id": "u%%d", "context": {%%s}}',
                             math.random(100000), table.concat(parts, ", "))
  return wrk.format("POST", "/impression", headers, body)
end

request = function()
  if #ids > 0 and math.random() < 0.2 then
    local id = table.remove(ids)
    return wrk.format("POST", "/click", headers, '{"impression_id": "' .. id .. '"}')
  end
  return impression()
end

-- Clicks go to the newest impressions not yet clicked: a short list, oldest dropped first, so that no
-- click falls outside the benchmark's few-seconds attribution window (a 410, which wrk counts as an error).
response = function(status, headers, body)
  local id = string.match(body, '"impression_id"%%s*:%%s*"([^"]+)"')
  if id then
    ids[#ids + 1] = id
    if #ids > 64 then table.remove(ids, 1) end
  end
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

def create_app(each_request=None):
    app = Flask("noop")

    @app.post("/impression")
    def impression():
        request.get_json()
        if each_request is not None:
            each_request()
        return jsonify(impression_id="bench~noop", artwork_id="art-0", propensity=1.0, variant="default",
                       policy="noop", model_version=0, fallback=False)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/click")
    def click():
        request.get_json()
        if each_request is not None:
            each_request()
        return jsonify(status="recorded")

    return app
"""


# The no-op Flask app above plus what every artbandit request needs at the least: one round trip to
# Redis, through artbandit's own request-path client (`ScriptRunner`), running a script that does
# nothing. It shows what the round trip alone costs under the same gunicorn settings.
NOOP_REDIS_APP = """
import os

import redis
from noop_app import create_app as create_noop_app

from service.store.scripts import ScriptRunner


def create_app():
    state = {}

    def roundtrip():
        if not state:  # in the worker, after gunicorn forked it
            r = redis.Redis.from_url(os.environ["ARTBANDIT_REDIS_URL"], socket_timeout=0.05)
            state.update(runner=ScriptRunner(r), script=r.register_script("return 1"))
        state["runner"].run(state["script"], ["bench:noop"], ["x"])

    return create_noop_app(each_request=roundtrip)
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
    cpu_us: dict[str, float] = field(default_factory=dict)  # CPU µs per request, by process group

    def cpu_text(self) -> str:
        parts = [f"{name} {us:,.0f}" for name, us in self.cpu_us.items()]
        return f"CPU µs/request: {' + '.join(parts)}" if parts else ""


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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """The CPU every figure is stated beside: /proc/cpuinfo's model name (lscpu's "Model name"), else what
    `platform` can tell. The benchmarks of bench/ take it from here."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants alive now (e.g. gunicorn and its workers)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (OSError, IndexError, ValueError):  # gone meanwhile
        pass
    return total


def run_wrk(
    url: str,
    seconds: int,
    connections: int,
    pace_ms: float,
    tmp: Path,
    label: str,
    cpu_of: dict[str, int] | None = None,
    client_key: str | None = None,
) -> Result:
    """One wrk run. `cpu_of` (group name -> pid): also the CPU those process trees used per request."""
    script = tmp / f"{label}.lua"
    auth = f', ["Authorization"] = "Bearer {client_key}"' if client_key else ""
    script.write_text(
        WRK_SCRIPT
        % {"features": ", ".join(f'"{f}"' for f in FEATURES), "pace_ms": f"{pace_ms:.3f}", "auth": auth}
    )
    groups = cpu_of or {}
    before = {name: cpu_seconds(pid) for name, pid in groups.items()}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used = {name: cpu_seconds(pid) - before[name] for name, pid in groups.items()}
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
        {name: seconds_used / max(requests, 1) * 1e6 for name, seconds_used in used.items()},
    )


class Pending:
    """The benchmark title's pending impressions (labelled by the learner one window after serving)."""

    def __init__(self, url: str) -> None:
        self._r = redis.Redis.from_url(url)
        self._key = keys.pending("bench")

    def wait_drained(self, timeout: float) -> None:
        """Until the learner has labelled every impression served so far (and read the labels)."""
        deadline = time.monotonic() + timeout
        while self._r.zcard(self._key) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the learner reads what its last sweep emitted within a step (0.1 s)

    def close(self) -> None:
        self._r.close()


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


def append_to_benchmarks(heading: str, command: str, table: str) -> None:
    """--write: the run's tables as a dated section at the end of docs/benchmarks.md."""
    with open(ROOT / "docs" / "benchmarks.md", "a", encoding="utf-8") as fh:
        fh.write(f"\n## {heading} ({time.strftime('%Y-%m-%d')})\n\nCommand: `{command}`\n\n{table}\n")


def put_title(base: str, early_updates: str = "auto", title_id: str = "bench") -> None:
    """A benchmark title; `early_updates` "auto" leaves the setting to the service's default."""
    params: dict[str, object] = {"alpha": 1.0}
    if early_updates != "auto":
        params["early_updates"] = early_updates == "true"
    body = json.dumps(
        {"features": FEATURES, "artworks": ARTWORKS, "policy": {"name": "linucb", "params": params}}
    ).encode()
    req = urllib.request.Request(
        f"{base}/titles/{title_id}",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status in (200, 201), resp.status


def cpu_line(app: Summary, noop: Summary, noop_redis: Summary) -> str:
    def med(summary: Summary, group: str | None = None) -> float:
        return statistics.median(
            r.cpu_us.get(group, 0.0) if group else sum(r.cpu_us.values()) for r in summary.rounds
        )

    parts = ", ".join(f"{g} {med(app, g):,.0f}" for g in ("api", "redis", "learner"))
    return (
        f"artbandit {med(app):,.0f} µs ({parts}); no-op Flask workers {med(noop):,.0f} µs; no-op Flask + "
        f"Redis round trip {med(noop_redis):,.0f} µs (workers {med(noop_redis, 'api'):,.0f}, Redis "
        f"{med(noop_redis, 'redis'):,.0f}); wrk's own CPU is not counted."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="measured seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds per load (medians reported)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--threads",
        type=int,
        default=gunicorn_conf.threads,
        help="gunicorn threads per worker (default: production's, %(default)s)",
    )
    ap.add_argument(
        "--client-keys", action="store_true", help="require client keys; every request sends one"
    )
    ap.add_argument(
        "--early-updates", choices=("auto", "true", "false"), default="auto",
        help="the title's early_updates: auto (the default: early), true, or false (the published figures)",
    )  # fmt: skip
    ap.add_argument("--write", action="store_true", help="append the table to docs/benchmarks.md")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    summaries: list[Summary] = []
    ratios: list[float] = []
    wsgi_ratios: list[float] = []
    rt_ratios: list[float] = []
    with PrivateRedis(appendonly=True) as redis_srv, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "noop_app.py").write_text(NOOP_APP)
        (tmp / "noop_wsgi.py").write_text(NOOP_WSGI_APP)
        (tmp / "noop_redis.py").write_text(NOOP_REDIS_APP)
        env = dict(os.environ)
        env.update(
            ARTBANDIT_REDIS_URL=redis_srv.url,
            ARTBANDIT_API_KEY=API_KEY,
            ARTBANDIT_ATTRIBUTION_WINDOW=str(WINDOW_SECONDS),
        )
        key = CLIENT_KEYS[-1] if args.client_keys else None
        wrk = functools.partial(run_wrk, client_key=key)  # every server gets the same requests
        if args.client_keys:
            env["ARTBANDIT_CLIENT_KEYS"] = ",".join(CLIENT_KEYS)
        metrics_dir = tmp / "prom"
        metrics_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        port_app, port_noop, port_wsgi, port_rt = free_port(), free_port(), free_port(), free_port()
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
        rt_env = dict(noop_env, PYTHONPATH=f"{tmp}{os.pathsep}{ROOT}", ARTBANDIT_REDIS_URL=redis_srv.url)
        rt = start_gunicorn(
            "noop_redis:create_app()", port_rt, args.workers, rt_env, tmp, threads=args.threads
        )
        assert redis_srv.process is not None
        artbandit_procs = {"api": app.pid, "redis": redis_srv.process.pid, "learner": learner.pid}
        noop_procs = {"api": noop.pid}
        rt_procs = {"api": rt.pid, "redis": redis_srv.process.pid}
        pending = Pending(redis_srv.url)
        try:
            base_app, base_noop = f"http://127.0.0.1:{port_app}", f"http://127.0.0.1:{port_noop}"
            base_wsgi = f"http://127.0.0.1:{port_wsgi}"
            base_rt = f"http://127.0.0.1:{port_rt}"
            wait_http(f"{base_app}/healthz")
            put_title(base_app, args.early_updates)
            time.sleep(1.0)
            # warm-up: fill caches, compile scripts, let the learner publish a first snapshot
            wrk(base_app, 3, 8, 0, tmp, "warm-app")
            wait_http(f"{base_noop}/healthz")
            wait_http(f"{base_wsgi}/healthz")
            wait_http(f"{base_rt}/healthz")
            sat_app, sat_noop = Summary("artbandit", "saturated", []), Summary("noop", "saturated", [])
            sat_wsgi = Summary("noop-wsgi", "saturated", [])
            sat_rt = Summary("noop+redis", "saturated", [])
            n, secs = args.connections, args.seconds

            def artbandit_round(pace_ms: float, label: str) -> Result:
                """Serve one attribution window unmeasured (from then on the learner labels, every moment,
                what was served a window earlier at this same rate: the steady state), then measure;
                then let the learner label the round's last window before any other server runs."""
                wrk(base_app, WINDOW_SECONDS, n, pace_ms, tmp, f"{label}-lead")
                result = wrk(base_app, secs, n, pace_ms, tmp, label, cpu_of=artbandit_procs)
                pending.wait_drained(WINDOW_SECONDS * 3 + 10)
                return result

            for k in range(args.rounds):
                sat_app.rounds.append(artbandit_round(0, "artbandit-sat"))
                sat_noop.rounds.append(wrk(base_noop, secs, n, 0, tmp, "noop-sat", cpu_of=noop_procs))
                sat_rt.rounds.append(wrk(base_rt, secs, n, 0, tmp, "noop+redis-sat", cpu_of=rt_procs))
                sat_wsgi.rounds.append(wrk(base_wsgi, secs, n, 0, tmp, "noop-wsgi-sat"))
                ratios.append(sat_app.rounds[-1].rps / sat_noop.rounds[-1].rps)
                rt_ratios.append(sat_rt.rounds[-1].rps / sat_noop.rounds[-1].rps)
                wsgi_ratios.append(sat_app.rounds[-1].rps / sat_wsgi.rounds[-1].rps)
                print(
                    f"round {k + 1}: artbandit {sat_app.rounds[-1].rps:,.0f} req/s "
                    f"({sat_app.rounds[-1].cpu_text()}), "
                    f"noop Flask {sat_noop.rounds[-1].rps:,.0f} req/s ({sat_noop.rounds[-1].cpu_text()}; "
                    f"ratio {ratios[-1]:.2f}), "
                    f"noop Flask + Redis round trip {sat_rt.rounds[-1].rps:,.0f} req/s "
                    f"(ratio to noop Flask {rt_ratios[-1]:.2f}), "
                    f"noop WSGI {sat_wsgi.rounds[-1].rps:,.0f} req/s (ratio {wsgi_ratios[-1]:.2f})",
                    flush=True,
                )
            half = sat_app.rps / 2
            pace_ms = args.connections / half * 1000.0
            half_app, half_noop = Summary("artbandit", "paced", []), Summary("noop", "paced", [])
            for _ in range(args.rounds):
                half_app.rounds.append(artbandit_round(pace_ms, "artbandit-half"))
                half_noop.rounds.append(wrk(base_noop, secs, n, pace_ms, tmp, "noop-half"))
            summaries = [sat_app, sat_noop, half_app, half_noop, sat_rt, sat_wsgi]
        finally:
            pending.close()
            for proc in (app, noop, wsgi, rt, learner):
                stop(proc)

    cpu = cpu_model()
    lines = [
        f"Machine: {os.cpu_count()} cores, {cpu}; gunicorn gthread workers={args.workers} "
        f"x {args.threads} threads, keep-alive, SO_REUSEPORT; "
        f"wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s per row "
        "(medians; p99 also worst round); 80% /impression, 20% /click; "
        f"client keys {'on (every request sends one)' if args.client_keys else 'off'}; "
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
        f"Flask's request machinery, see service/web/hot.py): **{statistics.median(wsgi_ratios):.2f}×** "
        f"(rounds {', '.join(f'{x:.2f}' for x in wsgi_ratios)}).",
        f"The no-op Flask endpoint plus one round trip to Redis per request (an empty script, through "
        f"artbandit's request-path client): **{statistics.median(rt_ratios):.2f}×** the no-op's throughput "
        f"(rounds {', '.join(f'{x:.2f}' for x in rt_ratios)}): what the round trip alone costs.",
        "CPU per request at saturation (median of rounds, /proc): "
        + cpu_line(summaries[0], summaries[1], summaries[4]),
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        append_to_benchmarks("HTTP", "python bench/http_load.py", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
