"""A/A test looked at on every refresh: false-winner rate of today's fixed-horizon rule vs the
always-valid (mSPRT) rule the dashboard now uses (issue 16).

    python bench/aa_sequential.py [--runs 2000] [--looks 10000] [--batch 100] [--rate 0.02]

Two identical arms; after every batch of `batch` impressions per arm (one dashboard refresh) the rule is
evaluated on the cumulative counts; a run counts as a false winner when the rule fires at any look.
Method: simulator/aa_test.py.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.aa_test import RULES, false_winner_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--looks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rates", default="0.003,0.02")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"A/A, {args.runs} runs x {args.looks:,} looks, {args.batch} impressions per arm per look\n")
    print("| CTR | rule | runs declaring a winner | 95% interval |")
    print("|---|---|---|---|")
    for rate in (float(r) for r in args.rates.split(",")):
        for rule in RULES:
            started = time.perf_counter()
            share = false_winner_rate(rule, args.runs, args.looks, args.batch, rate, args.seed)
            half = 1.96 * math.sqrt(share * (1 - share) / args.runs)
            print(f"| {rate:.1%} | {rule} | {share:.1%} | {max(0, share - half):.1%}–{share + half:.1%} |")
            print(f"  ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
