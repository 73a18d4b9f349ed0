"""A/B: what requiring client keys costs the hot path, with both servers loaded at the same moments.

    python -m bench.client_keys_ab [--rounds 8] [--seconds 6] [--workers 1] [--connections 16]

Two copies of the API under production gunicorn settings (bench/ab.py's simultaneous rounds: each its
own private redis-server, two wrk at once per round): A without client keys, B with two client keys.
Both wrk send `Authorization: Bearer <key>` (80% /impression, 20% /click), which A ignores, so a VM's
drift and neighbours cancel in the per-round ratio B/A. Prints each round's req/s, the ratios and their
median. An A/A run (`--aa`: B without keys too) shows the spread the method itself has.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from bench.ab import Side, simultaneous
from bench.http_load import CLIENT_KEYS


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
    keyed = {} if args.aa else {"ARTBANDIT_CLIENT_KEYS": ",".join(CLIENT_KEYS)}
    sides = [Side("A"), Side("B", env=keyed)]
    result = simultaneous(sides, args.rounds, args.seconds, args.workers, args.connections, CLIENT_KEYS[-1])
    print(result.summary("A/A (neither keyed)" if args.aa else "B (client keys) / A (open)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
