#!/usr/bin/env python3
"""Time and accuracy of the exact moments of every estimator (mean and variance per parameter).

    python benchmarks/moments_benchmark.py [--no-8x8] [--sparse]

For each case: the route that ``exact_moments`` takes (enumeration, exact recursions, or certified
float64), its wall time (best of 3, after tabulating the case), and for the float64 route the
largest certified relative error of a variance.  With ``--sparse`` each case also gets a row for the
certified recursions over the sparse tables (:func:`pgverify.montecarlo.sparsemoments.sparse_moments`,
after ``sparse_tabulate``, with the baselines the sampled check uses), the route ``check`` takes
beyond the dense budget.  FrozenLake 8x8 is imported from Gymnasium when it
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
from pgverify.montecarlo.estimators import ESTIMATORS  # noqa: E402
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


def measure_sparse(case, repeat=3):
    import numpy as np

    from pgverify.montecarlo.sparse import sparse_state_values, sparse_tabulate
    from pgverify.montecarlo.sparsemoments import sparse_moments

    mdp = sparse_tabulate(case)
    V = sparse_state_values(mdp)
    J = float(np.dot(mdp.rho0, V[0] if mdp.horizon is not None else V))
    best, mom = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        mom = sparse_moments(mdp, ESTIMATORS, J=J, V=V)
        best = min(best, time.perf_counter() - t)
    if mom is None:
        return best, {"over the sparse budget"}, None
    routes = {m[2].split(" (")[0] for m in mom.values()}
    worst = max((e / abs(v) for m in mom.values() if m[4] for v, e in zip(m[1], m[4]) if v), default=None)
    return best, routes, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-8x8", action="store_true")
    ap.add_argument("--sparse", action="store_true", help="also time the recursions over the sparse tables")
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
        runs = [(name, measure)] + ([(f"{name}, sparse tables", measure_sparse)] if args.sparse else [])
        for label, how in runs:
            if how is measure and args.sparse and "8x8" in name:
                continue  # the dense route takes about 30 s there; check no longer uses it
            secs, routes, worst = how(case)
            err = "exact" if worst is None else f"{worst:.1g}"
            print(f"| {label} | {len(case.parameters)} | {', '.join(sorted(routes))} | {secs:.2f} | {err} |")


if __name__ == "__main__":
    main()
