"""Simultaneous A/B of two API servers: both saturated at the same moments, so a VM's drift and its
neighbours cancel in each round's ratio B/A.

    python -m bench.ab --baseline REV [--rounds 8] [--seconds 6] [--workers 1] [--connections 16]

`--baseline REV`: A is the code of git revision REV (exported with `git archive` into a temporary
directory and run from there), B is this checkout; the question is whether this checkout's single-title
route (80% POST /impression, 20% POST /click, bench/http_load.py's wrk script) is slower than REV's. Each
server gets its own private redis-server (AOF everysec) and production gunicorn settings
(bench/http_load.py's `start_gunicorn`, with each side's own service/gunicorn_conf.py hooks), so a change
of the key layout or of the scripts between the two revisions cannot collide. Each round runs two wrk at
once, one per server, with the same script. No learner runs (the attribution window is the default, so
nothing falls due). `--aa`: both sides run this checkout (the method's own spread).
bench/client_keys_ab.py uses the same rounds to price the client-key check.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.http_load import API_KEY, cpu_model, put_title, run_wrk, start_gunicorn, stop, wait_http
from service.devstack.redis_server import PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Side:
    """One server of an A/B: the code it runs (a directory with `service/`) and its extra environment."""

    name: str
    code: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Rounds:
    ratios: list[float] = field(default_factory=list)  # B/A per round
    a_rps: list[float] = field(default_factory=list)
    b_rps: list[float] = field(default_factory=list)

    def summary(self, label: str) -> str:
        r = self.ratios
        return (
            f"{label}: median {statistics.median(r):.3f} over {len(r)} rounds (min {min(r):.3f}, max "
            f"{max(r):.3f}); A median {statistics.median(self.a_rps):,.0f} req/s, B "
            f"{statistics.median(self.b_rps):,.0f} req/s; {os.cpu_count()} cores, {cpu_model()}"
        )


@contextmanager
def exported(rev: str) -> Iterator[Path]:
    """The tree of git revision `rev`, exported into a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="artbandit-ab-") as tmpdir:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmpdir], input=archive, check=True)
        yield Path(tmpdir)


def simultaneous(
    sides: Sequence[Side], rounds: int, seconds: int, workers: int, connections: int, client_key: str | None
) -> Rounds:
    """Start both servers (each with its own Redis), then `rounds` rounds of two wrk at once."""
    out = Rounds()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        procs, urls = [], []
        for side in sides:
            redis_srv = stack.enter_context(PrivateRedis(appendonly=True))
            env = dict(os.environ, ARTBANDIT_REDIS_URL=redis_srv.url, ARTBANDIT_API_KEY=API_KEY, **side.env)
            # the side's own code first on the path (the venv's editable install points at this checkout)
            env["PYTHONPATH"] = str(side.code)
            (tmp / side.name).mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / side.name)
            port = free_port()
            conf = "python:service.gunicorn_conf"
            procs.append(start_gunicorn("service.app:create_app()", port, workers, env, side.code, conf=conf))
            urls.append(f"http://127.0.0.1:{port}")
        try:
            for url in urls:
                wait_http(f"{url}/healthz")
                put_title(url)
            time.sleep(1.0)
            for url in urls:
                run_wrk(url, 2, 4, 0, tmp, "warm", client_key=client_key)
            with ThreadPoolExecutor(2) as pool:
                for k in range(rounds):
                    a, b = pool.map(
                        lambda name_url: run_wrk(
                            name_url[1], seconds, connections, 0, tmp, name_url[0], client_key=client_key
                        ),
                        [(f"A-{k}", urls[0]), (f"B-{k}", urls[1])],
                    )
                    out.ratios.append(b.rps / a.rps)
                    out.a_rps.append(a.rps)
                    out.b_rps.append(b.rps)
                    print(
                        f"round {k + 1}: A {a.rps:,.0f} req/s (errors {a.errors}), B {b.rps:,.0f} req/s "
                        f"(errors {b.errors}), B/A {out.ratios[-1]:.3f}",
                        flush=True,
                    )
        finally:
            for proc in procs:
                stop(proc)
    return out


def arguments(doc: str | None, aa_help: str) -> argparse.ArgumentParser:
    """The options every simultaneous A/B takes (rounds, their length, servers' size, --aa)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--workers", type=int, default=1, help="gunicorn workers per server")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections per server")
    ap.add_argument("--aa", action="store_true", help=aa_help)
    return ap


def have_wrk() -> bool:
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return False
    return True


def main() -> int:
    ap = arguments(__doc__, "A/A: both servers run this checkout")
    ap.add_argument("--baseline", help="git revision A runs (B runs this checkout)")
    args = ap.parse_args()
    if not have_wrk():
        return 2
    if not args.aa and not args.baseline:
        ap.error("give --baseline REV (or --aa)")
    with ExitStack() as stack:
        if args.aa:
            sides, label = [Side("A"), Side("B")], "A/A (this checkout twice)"
        else:
            base = stack.enter_context(exported(args.baseline))
            sides, label = [Side("A", base), Side("B")], f"B (this checkout) / A ({args.baseline})"
        result = simultaneous(sides, args.rounds, args.seconds, args.workers, args.connections, None)
    print(result.summary(label))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
