#!/usr/bin/env python3
"""Time and accuracy of the exact moments of every estimator (mean and variance per parameter).

    python benchmarks/moments_benchmark.py [--no-8x8]

For each case: the route that ``exact_moments`` takes (enumeration, exact recursions, or certified
float64), its wall time (best of 3, after tabulating the case), and for the float64 route the
largest certified relative error of a variance.  FrozenLake 8x8 is imported from Gymnasium when it
is installed (``pip install gymnasium``).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pgverify  # noqa: E402
from pgverify.montecarlo import tabulate  # noqa: E402
from pgverify.montecarlo.moments import exact_moments  # noqa: E402


def measure(case, repeat=3):
    mdp = tabulate(case, exact=True)
    best, mom = float("inf"), None
    for _ in range(repeat):
        if hasattr(mdp, "_extras_needed"):
            del mdp._extras_needed
        t = time.perf_counter()
        mom = exact_moments(mdp)
        best = min(best, time.perf_counter() - t)
    routes = {m.how.split(" (")[0] for m in mom.values()}
    worst = max((e / abs(v) for m in mom.values() if m.variance_error
                 for v, e in zip(m.variance, m.variance_error) if v), default=None)
    return best, routes, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-8x8", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} cpu_count={os.cpu_count()} python={platform.python_version()}")
    print("| case | parameters | route | seconds | largest relative error of a variance |")
    print("|---|---|---|---|---|")
    cases = [(p.stem, pgverify.load_case(p)) for p in sorted((ROOT / "cases").glob("*.yaml"))]
    if not args.no_8x8:
        try:
            from pgverify.importers import from_gymnasium

            case = from_gymnasium("FrozenLake-v1", map="8x8")
            cases.append(("frozenlake_8x8 (imported)", case))
        except Exception as exc:  # gymnasium missing: say so, measure the rest
            print(f"(FrozenLake 8x8 skipped: {exc})")
    for name, case in cases:
        secs, routes, worst = measure(case)
        err = "exact" if worst is None else f"{worst:.1g}"
        print(f"| {name} | {len(case.parameters)} | {', '.join(sorted(routes))} | {secs:.2f} | {err} |")


if __name__ == "__main__":
    main()
