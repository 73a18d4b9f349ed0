"""HTTP benchmark of pages: POST /impressions with 20-title pages against gunicorn, next to the no-op
Flask endpoint served by the same gunicorn settings, in the same run.

    python bench/page_load.py [--seconds 8] [--rounds 4] [--page-size 20] [--workers 2] [--connections 32]
                              [--loads 0.5,0.25] [--early-updates auto|true|false] [--write]

Needs `wrk` (Debian: apt-get install wrk). Starts a private redis-server (AOF everysec), the API under
gunicorn with service/gunicorn_conf.py and the learner, seeds `--page-size` titles, then alternates
rounds: artbandit serving pages (every request one page of all the titles for a random viewer, nothing
else), and the no-op Flask endpoint of bench/http_load.py answering single POST /impression requests.
The headline is impressions per second through POST /impressions (pages/s × page size) over the no-op's
requests per second, per round, median over rounds. Then rounds at each fraction of artbandit's saturated
page rate in `--loads` (half load always) give the p99 latency of a page there: Poisson arrivals from
bench/poisson_load.py (wrk's `delay()` pacing keeps its connections in lockstep; see that module). As in
bench/http_load.py, each artbandit round first serves one attribution window unmeasured (the learner's
steady state) and afterwards waits until the learner has labelled the round's impressions, so its work
never spills into a no-op round.
Every round also reads the CPU each process used per request (/proc; wrk's own from getrusage), and the
report turns them into what the CPU allows: both servers saturate the same two cores, so the throughput
ratio follows the CPU each needs per unit, and the ceiling row shows the ratio if deciding, recording
and encoding a page's titles cost the API nothing beyond one no-op request.
Prints markdown tables; --write appends them to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from http_load import (  # bench/http_load.py (this script's directory is on the path)
    API_KEY,
    FEATURES,
    NOOP_APP,
    ROOT,
    WINDOW_SECONDS,
    append_to_benchmarks,
    cpu_model,
    cpu_seconds,
    put_title,
    start_gunicorn,
    stop,
    wait_http,
)
from poisson_load import paced  # bench/poisson_load.py

from service import gunicorn_conf
from service.devstack.redis_server import PrivateRedis, free_port
from service.store import keys

WRK_SCRIPT = r"""
-- one request per page (or per single impression for the no-op), a random viewer and context
local features = {%(features)s}
local titles = {%(titles)s}
local path = "%(path)s"
math.randomseed(os.time() + math.floor(os.clock() * 1e6))

request = function()
  local parts = {}
  for i = 1, 3 do
    parts[#parts + 1] = string.format('"%%s": %%.3f', features[math.random(#features)], math.random())
  end
  local body
  if path == "/impressions" then
    body = string.format('{"user_id": "u%%d", "context": {%%s}, "titles": [%%s]}',
                         math.random(100000), table.concat(parts, ", "), table.concat(titles, ", "))
  else
    body = string.format('{"title_id": "page-0", "user_id": "u%%d", "context": {%%s}}',
                         math.random(100000), table.concat(parts, ", "))
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f %%f %%d\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000.0, latency:percentile(99) / 1000.0,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""


def run_wrk(url: str, path: str, titles: list[str], seconds: float, connections: int,
            tmp: Path, cpu_of: dict[str, int] | None = None) -> dict[str, float]:  # fmt: skip
    """One wrk run: requests/s, p50 and p99 in ms, errors, and CPU µs per request of `cpu_of`'s trees."""
    script = tmp / "page.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "features": ", ".join(f'"{f}"' for f in FEATURES),
            "titles": ", ".join(f'"\\"{t}\\""' for t in titles),
            "path": path,
        }
    )
    groups = cpu_of or {}
    before = {name: cpu_seconds(pid) for name, pid in groups.items()}
    wrk_before = _children_cpu()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "2s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    m = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)", out)
    if not m:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    requests, duration = int(m.group(1)), int(m.group(2)) / 1e6
    cpu = {n: (cpu_seconds(pid) - before[n]) / max(requests, 1) * 1e6 for n, pid in groups.items()}
    cpu["wrk"] = (_children_cpu() - wrk_before) / max(requests, 1) * 1e6
    return {
        "rps": requests / duration, "p50": float(m.group(3)), "p99": float(m.group(4)),
        "errors": float(m.group(5)), **{f"cpu_{n}": us for n, us in cpu.items()},
    }  # fmt: skip


def _children_cpu() -> float:
    """User + system CPU of this process's finished children (wrk, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def page_body(titles: list[str]) -> Callable[[random.Random], bytes]:
    """Request bodies like the wrk script's: a random viewer, three random features, every title."""

    def body(rng: random.Random) -> bytes:
        context = {f: round(rng.random(), 3) for f in rng.sample(FEATURES, 3)}
        page = {"user_id": f"u{rng.randrange(1, 100001)}", "context": context, "titles": titles}
        return json.dumps(page).encode()

    return body


def paced_round(
    url: str, titles: list[str], rate: float, seconds: float, connections: int, cpu_of: dict[str, int]
) -> dict[str, float]:
    """One Poisson-paced run (bench/poisson_load.py) in run_wrk's terms, CPU per page included."""
    before = {name: cpu_seconds(pid) for name, pid in cpu_of.items()}
    res = paced(url, "/impressions", page_body(titles), rate, seconds, connections)
    pages = max(res.requests, 1)
    cpu = {f"cpu_{n}": (cpu_seconds(pid) - before[n]) / pages * 1e6 for n, pid in cpu_of.items()}
    return {
        "rps": res.rps, "p50": res.p50, "p99": res.p99, "errors": float(res.errors),
        "cpu_wrk": res.client_cpu_us, **cpu,
    }  # fmt: skip


def put_titles(base: str, titles: list[str], early_updates: str) -> None:
    """The page's titles; `early_updates` "auto" leaves the setting to the service's default."""
    for title_id in titles:
        put_title(base, early_updates, title_id)


def wait_drained(r: redis.Redis, titles: list[str], timeout: float) -> None:
    """Until the learner has labelled every impression served so far."""
    deadline = time.monotonic() + timeout
    while sum(int(r.zcard(keys.pending(t))) for t in titles) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="measured seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds per load (medians reported)")
    ap.add_argument("--page-size", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--loads", default="0.5",
        help="paced loads as fractions of the saturated page rate, comma-separated (the goal is at 0.5)",
    )  # fmt: skip
    ap.add_argument(
        "--early-updates", choices=("auto", "true", "false"), default="auto",
        help="the titles' early_updates: auto (the default: early), true, or false (the published figures)",
    )  # fmt: skip
    ap.add_argument(
        "--aof-rewrite-min-size", default="4gb",
        help="Redis auto-aof-rewrite-min-size (docs/deploy.md: raise it on a small box; Redis: 64mb)",
    )  # fmt: skip
    ap.add_argument("--write", action="store_true", help="append the table to docs/benchmarks.md")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    titles = [f"page-{i}" for i in range(args.page_size)]
    load_before = os.getloadavg()[0]
    threads = gunicorn_conf.threads
    sat: list[dict[str, float]] = []
    noop_sat: list[dict[str, float]] = []
    fractions = [float(x) for x in args.loads.split(",")]
    if 0.5 not in fractions:
        fractions.insert(0, 0.5)
    at_load: dict[float, list[dict[str, float]]] = {f: [] for f in fractions}
    # AOF rewrites as docs/deploy.md advises for a small box: rare (a rewrite's fork stops Redis for tens of
    # ms and its child takes a core for seconds; on 2 cores that is the part-load p99). The report counts
    # the rewrites that happened anyway.
    rewrite_min = ["--auto-aof-rewrite-min-size", args.aof_rewrite_min_size]
    with (
        PrivateRedis(appendonly=True, extra_args=rewrite_min) as redis_srv,
        tempfile.TemporaryDirectory() as tmpdir,
    ):
        tmp = Path(tmpdir)
        (tmp / "noop_app.py").write_text(NOOP_APP)
        env = dict(os.environ)
        env.update(
            ARTBANDIT_REDIS_URL=redis_srv.url, ARTBANDIT_API_KEY=API_KEY,
            ARTBANDIT_ATTRIBUTION_WINDOW=str(WINDOW_SECONDS),
        )  # fmt: skip
        (tmp / "prom").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "prom")
        port_app, port_noop = free_port(), free_port()
        app = start_gunicorn(
            "service.app:create_app()", port_app, args.workers, env, ROOT, conf="python:service.gunicorn_conf"
        )
        learner = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "learn"], env=env, cwd=ROOT, start_new_session=True
        )
        noop = start_gunicorn(
            "noop_app:create_app()", port_noop, args.workers, dict(os.environ, PYTHONPATH=str(tmp)), tmp
        )
        r = redis.Redis.from_url(redis_srv.url)
        assert redis_srv.process is not None
        procs = {"api": app.pid, "redis": redis_srv.process.pid, "learner": learner.pid}
        try:
            base_app, base_noop = f"http://127.0.0.1:{port_app}", f"http://127.0.0.1:{port_noop}"
            wait_http(f"{base_app}/healthz")
            wait_http(f"{base_noop}/healthz")
            put_titles(base_app, titles, args.early_updates)
            time.sleep(1.0)
            run_wrk(base_app, "/impressions", titles, 3, 8, tmp)  # warm-up
            n, secs = args.connections, args.seconds

            def artbandit_round(rate: float | None) -> dict[str, float]:
                """Saturated (wrk, `rate` None) or at `rate` pages/s (Poisson arrivals), after one
                attribution window at the same load unmeasured (the learner's steady state)."""
                if rate is None:
                    run_wrk(base_app, "/impressions", titles, WINDOW_SECONDS, n, tmp)
                    out = run_wrk(base_app, "/impressions", titles, secs, n, tmp, cpu_of=procs)
                else:
                    paced(base_app, "/impressions", page_body(titles), rate, WINDOW_SECONDS, n)
                    out = paced_round(base_app, titles, rate, secs, n, procs)
                wait_drained(r, titles, WINDOW_SECONDS * 3 + 20)
                return out

            for k in range(args.rounds):
                sat.append(artbandit_round(None))
                noop_sat.append(
                    run_wrk(base_noop, "/impression", titles, secs, n, tmp, cpu_of={"noop": noop.pid})
                )
                print(
                    f"round {k + 1}: artbandit {sat[-1]['rps']:,.0f} pages/s = "
                    f"{sat[-1]['rps'] * args.page_size:,.0f} impressions/s (p99 {sat[-1]['p99']:.1f} ms); "
                    f"no-op Flask {noop_sat[-1]['rps']:,.0f} req/s; ratio "
                    f"{sat[-1]['rps'] * args.page_size / noop_sat[-1]['rps']:.2f}",
                    flush=True,
                )
            for fraction in fractions:
                rate = statistics.median(x["rps"] for x in sat) * fraction
                for _ in range(args.rounds):
                    at_load[fraction].append(artbandit_round(rate))
            rewrites = int(r.info("persistence")["aof_rewrites"])
        finally:
            r.close()
            for proc in (app, noop, learner):
                stop(proc)

    cpu = cpu_model()
    ratios = [a["rps"] * args.page_size / b["rps"] for a, b in zip(sat, noop_sat, strict=True)]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(x[key] for x in rows)

    k = args.page_size
    half = at_load[0.5]
    api, red, lrn, wrk = (med(sat, f"cpu_{n}") for n in ("api", "redis", "learner", "wrk"))
    noop_cpu, noop_wrk = med(noop_sat, "cpu_noop"), med(noop_sat, "cpu_wrk")
    noop_all = noop_cpu + noop_wrk
    per_imp = (api + red + lrn + wrk) / k  # all CPU per impression served through pages
    floor_imp = (noop_cpu + red + lrn + wrk) / k  # the same with the page's API work = one no-op request
    lines = [
        f"Machine: {os.cpu_count()} cores, {cpu}; load average {load_before:.1f} before the run, "
        f"{os.getloadavg()[0]:.1f} after it (1 minute); gunicorn gthread "
        f"workers={args.workers} x {threads} threads (service/gunicorn_conf.py for both servers); saturated: "
        f"wrk -t1 -c{args.connections}; part load: Poisson arrivals over {args.connections} keep-alive "
        f"connections (bench/poisson_load.py; its 'wrk' CPU column is that generator's); {args.rounds} "
        f"rounds of {args.seconds} s each (medians; p99 also worst round); Redis (AOF everysec) and the "
        f"learner on the same machine. artbandit: every request a {k}-title page; no-op: single POST "
        f"/impression; titles' early_updates: {args.early_updates}; Redis auto-aof-rewrite-min-size "
        f"{args.aof_rewrite_min_size}: {rewrites} AOF rewrite(s) during the run.",
        "",
        "| server | load | req/s | impressions/s | p50 ms | p99 ms | worst p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        f"| artbandit `POST /impressions` ({k} titles) | saturated | {med(sat, 'rps'):,.0f} | "
        f"{med(sat, 'rps') * k:,.0f} | {med(sat, 'p50'):.2f} | {med(sat, 'p99'):.2f} | "
        f"{max(x['p99'] for x in sat):.2f} | {sum(x['errors'] for x in sat):.0f} |",
        f"| no-op Flask `POST /impression` | saturated | {med(noop_sat, 'rps'):,.0f} | "
        f"{med(noop_sat, 'rps'):,.0f} | {med(noop_sat, 'p50'):.2f} | {med(noop_sat, 'p99'):.2f} | "
        f"{max(x['p99'] for x in noop_sat):.2f} | {sum(x['errors'] for x in noop_sat):.0f} |",
        *(
            f"| artbandit `POST /impressions` ({k} titles) | {f:g} of saturation | {med(rows, 'rps'):,.0f} | "
            f"{med(rows, 'rps') * k:,.0f} | {med(rows, 'p50'):.2f} | {med(rows, 'p99'):.2f} | "
            f"{max(x['p99'] for x in rows):.2f} | {sum(x['errors'] for x in rows):.0f} |"
            for f, rows in at_load.items()
        ),
        "",
        "Impressions per second through pages / no-op requests per second: "
        f"**{statistics.median(ratios):.2f}×** "
        f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}; goal ≥ 5×, aim 8×).",
        f"p99 of a {k}-title page at half load: **{med(half, 'p99'):.2f} ms** median, "
        f"{max(x['p99'] for x in half):.2f} ms worst round (goal ≤ 25 ms).",
        f"CPU per page at saturation (median, /proc): API workers {api:,.0f} µs, Redis {red:,.0f} µs, "
        f"learner {lrn:,.0f} µs, wrk {wrk:,.0f} µs; no-op per request: workers {noop_cpu:,.0f} µs, wrk "
        f"{noop_wrk:,.0f} µs.",
        "",
        "What the CPU allows (both servers saturate the same cores, so the throughput ratio follows the CPU "
        "each needs per unit):",
        "",
        "| | CPU per no-op request | CPU per impression in a page | ratio |",
        "|---|---:|---:|---:|",
        f"| measured, all processes | {noop_all:,.0f} µs | {per_imp:,.0f} µs | {noop_all / per_imp:.2f}× |",
        f"| ceiling: the page's API work no more than one no-op request (deciding, recording and encoding "
        f"{k} titles free) | {noop_all:,.0f} µs | {floor_imp:,.0f} µs | {noop_all / floor_imp:.2f}× |",
        f"| API tier alone (Redis and learner on other machines, load generator not counted) | "
        f"{noop_cpu:,.0f} µs | {api / k:,.0f} µs | {noop_cpu / (api / k):.2f}× |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        append_to_benchmarks("Pages over HTTP", "python bench/page_load.py", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
