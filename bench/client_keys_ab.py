"""A/B: what requiring client keys costs the hot path, with both servers loaded at the same moments.

    python -m bench.client_keys_ab [--rounds 8] [--seconds 6] [--workers 1] [--connections 16]

Starts a private redis-server and two copies of the API under gunicorn (production settings, as
bench/http_load.py starts them) on the same Redis: A without client keys, B with two client keys. Each
round runs two wrk at once, one per server, with the same script (80% /impression, 20% /click; both
send `Authorization: Bearer <key>`, which A ignores), so both see the same machine, whatever else runs
on it; a VM's drift and neighbours cancel in the per-round ratio B/A. Prints each round's req/s, the
ratios and their median. No learner runs (the attribution window is the default, so nothing falls due).
An A/A run (`--aa`: B without keys too) shows the spread the method itself has.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.http_load import API_KEY, CLIENT_KEYS, put_title, run_wrk, start_gunicorn, stop, wait_http
from service.devstack.redis_server import PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--workers", type=int, default=1, help="gunicorn workers per server")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections per server")
    ap.add_argument("--aa", action="store_true", help="A/A: B runs without client keys too")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    key = CLIENT_KEYS[-1]
    with PrivateRedis(appendonly=True) as redis_srv, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        base_env = dict(os.environ, ARTBANDIT_REDIS_URL=redis_srv.url, ARTBANDIT_API_KEY=API_KEY)
        procs, urls = [], []
        for name, keyed in (("A", False), ("B", not args.aa)):
            env = dict(base_env)
            if keyed:
                env["ARTBANDIT_CLIENT_KEYS"] = ",".join(CLIENT_KEYS)
            (tmp / name).mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / name)
            port = free_port()
            conf = "python:service.gunicorn_conf"
            procs.append(start_gunicorn("service.app:create_app()", port, args.workers, env, ROOT, conf=conf))
            urls.append(f"http://127.0.0.1:{port}")
        try:
            for url in urls:
                wait_http(f"{url}/healthz")
            put_title(urls[0])
            time.sleep(1.0)
            for url in urls:
                run_wrk(url, 2, 4, 0, tmp, "warm", client_key=key)
            ratios: list[float] = []
            with ThreadPoolExecutor(2) as pool:
                for k in range(args.rounds):
                    a, b = pool.map(
                        lambda name_url: run_wrk(
                            name_url[1], args.seconds, args.connections, 0, tmp, name_url[0], client_key=key
                        ),
                        [(f"A-{k}", urls[0]), (f"B-{k}", urls[1])],
                    )
                    ratios.append(b.rps / a.rps)
                    print(
                        f"round {k + 1}: A {a.rps:,.0f} req/s (errors {a.errors}), B {b.rps:,.0f} req/s "
                        f"(errors {b.errors}), B/A {ratios[-1]:.3f}",
                        flush=True,
                    )
        finally:
            for proc in procs:
                stop(proc)
    label = "A/A (neither keyed)" if args.aa else "B (client keys) / A (open)"
    print(
        f"{label}: median {statistics.median(ratios):.3f} over {len(ratios)} rounds "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}); {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
