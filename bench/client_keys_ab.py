"""A/B: what requiring client keys costs the hot path, with both servers loaded at the same moments.

    python -m bench.client_keys_ab [--rounds 8] [--seconds 6] [--workers 1] [--connections 16]

Two copies of the API under production gunicorn settings (bench/ab.py's simultaneous rounds: each its
own private redis-server, two wrk at once per round): A without client keys, B with two client keys.
Both wrk send `Authorization: Bearer <key>` (80% /impression, 20% /click), which A ignores, so a VM's
drift and neighbours cancel in the per-round ratio B/A. Prints each round's req/s, the ratios and their
median. An A/A run (`--aa`: B without keys too) shows the spread the method itself has.
"""

from __future__ import annotations

from bench.ab import Side, arguments, have_wrk, simultaneous
from bench.http_load import CLIENT_KEYS


def main() -> int:
    args = arguments(__doc__, "A/A: B runs without client keys too").parse_args()
    if not have_wrk():
        return 2
    keyed = {} if args.aa else {"ARTBANDIT_CLIENT_KEYS": ",".join(CLIENT_KEYS)}
    sides = [Side("A"), Side("B", env=keyed)]
    result = simultaneous(sides, args.rounds, args.seconds, args.workers, args.connections, CLIENT_KEYS[-1])
    print(result.summary("A/A (neither keyed)" if args.aa else "B (client keys) / A (open)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
