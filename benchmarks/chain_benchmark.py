#!/usr/bin/env python3
"""Time the symbolic J(theta) and its exact gradient on a family of parametric chains.

The chain ``chain-N-k`` (N >= 1 states, k >= 1 parameters)
----------------------------------------------------------
* states ``c0 .. c{N-1}`` and one terminal state ``goal``; the episode starts in ``c0``;
* one action ``go``, taken with probability 1 in every state (explicit policy ``{go: 1}``),
  so every parameter sits in the dynamics;
* parameters ``p0 .. p{k-1}``, each with value 1/2 at the point;
* from ``c{i}``: with probability ``p{i mod k}`` to ``c{i+1}`` (to ``goal`` when i = N-1),
  otherwise (probability ``1 - p{i mod k}``) back by ``1 + (i mod 3)`` states, i.e. to
  ``c{max(0, i - 1 - (i mod 3))}``: the fall-back target is clamped at ``c0``, and from
  ``c0`` it is ``c0`` itself (a self-loop);
* reward -1 on every step (``rewards: {default: -1}``), discount 1, no horizon, so
  J = -(expected number of steps from c0 to goal).

With p = 1/2 the walk drifts backwards (forward 1, back 2 on average), so J grows
exponentially in N (about -6.6e20 at N = 100, -1e60 at N = 300) and, as a rational
function of p, has numerator and denominator of degree about N / k in each p_j.

What is measured (each configuration in its own subprocess, killed after --timeout s)
---------------------------------------------------------------------------------------
* ``build``: ``pgverify.case_from_dict`` on the case dict (parsing and validation);
* ``--engines bellman`` (default): ``Algebra(case, "symbolic")`` plus the Bellman engine,
  i.e. the symbolic J and gradient as elements of a sympy fraction field;
  ``--engines all``: ``pgverify.check(case, mode="symbolic")`` with all three engines;
* the peak resident memory of the subprocess (``resource.getrusage`` ``ru_maxrss``);
* the degrees of J's numerator and denominator in each parameter (``PolyElement.degrees()``)
  and the number of terms of the numerator;
* a sanity check: J and grad J at p = 1/2 (``alg.at_point``) against an independent float
  computation with numpy: V = solve(I - P, -1), J = V[c0], and
  dJ/dp_j = [solve(I - P, (dP/dp_j) V)][c0]; they must agree to 1e-9 relative.

When one run of a k exceeds the timeout (or fails), the larger N for that k are skipped.

Usage::

    python benchmarks/chain_benchmark.py [--sizes 10,30,100,300] [--ks 1,2,4]
        [--timeout 120] [--engines bellman|all] [--markdown]

Targets (from the project's issue): N = 100, k = 2 and N = 300, k = 1 each in under
20 s on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

REL_TOL = 1e-9
ALL_ENGINES = ("bellman", "trajectory", "occupancy")


# ---------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------
def back_target(i: int) -> int:
    """The state index a failed step from c{i} falls back to (clamped at c0)."""
    return max(0, i - (1 + i % 3))


def chain_dict(N: int, k: int) -> dict:
    """The case dict of chain-N-k (see the module docstring)."""
    if N < 1 or k < 1:
        raise ValueError("need N >= 1 and k >= 1")
    states = [f"c{i}" for i in range(N)]
    transitions = {}
    for i in range(N):
        p = f"p{i % k}"
        forward = "goal" if i == N - 1 else f"c{i + 1}"
        transitions[f"c{i}"] = {"go": {forward: p, f"c{back_target(i)}": f"1 - {p}"}}
    used = sorted({i % k for i in range(N)})
    return {
        "name": f"chain-{N}-{k}",
        "description": f"parametric chain, {N} states, {k} parameter(s)",
        "parameters": {f"p{j}": "1/2" for j in used},
        "states": states + ["goal"],
        "terminal": ["goal"],
        "actions": ["go"],
        "start": "c0",
        "discount": 1,
        "policy": {s: {"go": 1} for s in states},
        "transitions": transitions,
        "rewards": {"default": -1},
    }


def numpy_reference(N: int, k: int, p: float = 0.5):
    """J and dJ/dp_j at p_j = p for all j, in floats (numpy, independent of pgverify)."""
    import numpy as np

    P = np.zeros((N, N))
    dP = np.zeros((k, N, N))
    for i in range(N):
        j = i % k
        if i + 1 < N:
            P[i, i + 1] += p
            dP[j, i, i + 1] += 1.0
        b = back_target(i)
        P[i, b] += 1.0 - p
        dP[j, i, b] -= 1.0
    A = np.eye(N) - P
    V = np.linalg.solve(A, -np.ones(N))
    grad = [float(np.linalg.solve(A, dP[j] @ V)[0]) for j in range(k)]
    return float(V[0]), grad


def _rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


# ---------------------------------------------------------------------------
# One configuration (runs in a subprocess)
# ---------------------------------------------------------------------------
def _maxrss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux (bytes on macOS)
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def run_one(N: int, k: int, engines: str) -> dict:
    import pgverify
    from pgverify.algebra import Algebra
    from pgverify.engines import bellman

    out = {"N": N, "k": k, "engines": engines, "rss_after_import_mb": _maxrss_mb()}
    d = chain_dict(N, k)
    t0 = time.perf_counter()
    case = pgverify.case_from_dict(d)
    out["build_s"] = time.perf_counter() - t0

    if engines == "bellman":
        t0 = time.perf_counter()
        alg = Algebra(case, "symbolic")
        t1 = time.perf_counter()
        res = bellman(case, alg)
        t2 = time.perf_counter()
        out["algebra_s"] = t1 - t0
        out["engine_s"] = t2 - t1
        out["solve_s"] = t2 - t0
        J, grad = res.J, res.grad
    else:
        t0 = time.perf_counter()
        result = pgverify.check(case, mode="symbolic", engines=ALL_ENGINES)
        out["solve_s"] = time.perf_counter() - t0
        out["check_seconds"] = result.seconds
        out["verified"] = result.verified
        out["proof"] = result.proof
        out["not_run"] = dict(result.not_run)
        out["truncation"] = {n: {"length": t.get("length")} for n, t in result.truncation.items()}
        alg = result.algebra
        ref = result.engines["bellman"]
        J, grad = ref.J, ref.grad

    out["mode"] = alg.mode
    out["params"] = [str(p) for p in alg.params]
    out["numer_degrees"] = list(J.numer.degrees())
    out["denom_degrees"] = list(J.denom.degrees())
    out["numer_terms"] = len(J.numer.terms())
    t0 = time.perf_counter()
    J_exact, _ = alg.at_point(J)
    grad_exact = [alg.at_point(g)[0] for g in grad]
    out["at_point_s"] = time.perf_counter() - t0
    out["J_value"] = str(J_exact)
    out["J_float"] = float(J_exact)
    out["grad_float"] = [float(g) for g in grad_exact]
    # the numpy reference, per parameter name p{j} (k may exceed N: unused p{j} are absent)
    ref_J, ref_grad = numpy_reference(N, k)
    names = out["params"]
    ref_grad = [ref_grad[int(n[1:])] for n in names]
    out["ref_J_float"] = ref_J
    out["ref_grad_float"] = ref_grad
    out["J_rel_err"] = _rel(out["J_float"], ref_J)
    out["grad_rel_err"] = max((_rel(a, b) for a, b in zip(out["grad_float"], ref_grad)), default=0.0)
    out["sanity_ok"] = out["J_rel_err"] <= REL_TOL and out["grad_rel_err"] <= REL_TOL
    out["peak_rss_mb"] = _maxrss_mb()
    return out


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------
def machine_info() -> dict:
    try:
        import sympy

        sympy_v = sympy.__version__
        from sympy.external.gmpy import GROUND_TYPES
    except Exception:  # pragma: no cover
        sympy_v, GROUND_TYPES = "?", "?"
    try:
        import flint

        flint_v = flint.__version__
    except Exception:
        flint_v = "not installed"
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "sympy": sympy_v,
        "sympy_ground_types": GROUND_TYPES,
        "python-flint": flint_v,
        "platform": platform.platform(),
    }


def run_subprocess(N: int, k: int, engines: str, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(N), str(k), "--engines", engines]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:  # subprocess.run kills the child
        return {"N": N, "k": k, "status": "timeout", "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {"N": N, "k": k, "status": f"error (exit {proc.returncode}): {tail[0]}", "wall_s": wall}
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["status"] = "ok"
    data["wall_s"] = wall
    return data


def _degs(ds) -> str:
    return ",".join(str(x) for x in ds)


def table_rows(rows: list, engines: str) -> tuple[list, list]:
    solve_head = "J+grad symbolic (s)" if engines == "bellman" else "check(all) (s)"
    head = ["N", "k", "build (s)", solve_head, "peak RSS (MB)", "deg num", "deg den",
            "terms num", "J at p=1/2", "rel err J", "rel err grad", "sanity"]
    if engines != "bellman":
        head += ["verified", "proof", "not run / truncated"]
    body = []
    for r in rows:
        if r["status"] != "ok":
            body.append([str(r["N"]), str(r["k"]), "", f"{r['status']} ({r['wall_s']:.0f} s)"] + [""] * (len(head) - 4))
            continue
        line = [
            str(r["N"]), str(r["k"]), f"{r['build_s']:.3f}", f"{r['solve_s']:.2f}",
            f"{r['peak_rss_mb']:.0f}", _degs(r["numer_degrees"]), _degs(r["denom_degrees"]),
            str(r["numer_terms"]), f"{r['J_float']:.6e}", f"{r['J_rel_err']:.1e}",
            f"{r['grad_rel_err']:.1e}", "ok" if r["sanity_ok"] else "FAIL",
        ]
        if engines != "bellman":
            notes = [f"{n}: {msg}" for n, msg in r["not_run"].items() if msg != "not requested"]
            notes += [f"{n} truncated at length {t['length']}" for n, t in r["truncation"].items()]
            line += [str(r["verified"]), r["proof"], "; ".join(notes) or "-"]
        body.append(line)
    return head, body


def print_table(rows: list, engines: str, markdown: bool) -> None:
    head, body = table_rows(rows, engines)
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for b in body:
            print("| " + " | ".join(c.replace("|", "\\|") for c in b) + " |")
        return
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for b in body:
        print("  ".join(c.rjust(w) for c, w in zip(b, widths)))


def _ints(s: str) -> list:
    return [int(x) for x in s.split(",") if x.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,30,100,300", help="chain lengths N (comma-separated)")
    ap.add_argument("--ks", default="1,2,4", help="numbers of parameters k (comma-separated)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per configuration")
    ap.add_argument("--engines", choices=("bellman", "all"), default="bellman",
                    help="bellman: time Algebra + Bellman engine; all: time pgverify.check with all three")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures to FILE")
    ap.add_argument("--worker", nargs=2, type=int, metavar=("N", "K"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        N, k = args.worker
        print(json.dumps(run_one(N, k, args.engines)))
        return 0

    info = machine_info()
    print(f"machine: processor={info['processor']!r} cpu_count={info['cpu_count']} "
          f"python={info['python']} sympy={info['sympy']} (ground types {info['sympy_ground_types']}) "
          f"python-flint={info['python-flint']}")
    print(f"platform: {info['platform']}")
    print(f"engines: {args.engines}; timeout {args.timeout:g} s per configuration", flush=True)
    sizes, ks = sorted(_ints(args.sizes)), _ints(args.ks)
    rows = []
    for k in ks:
        for N in sizes:
            r = run_subprocess(N, k, args.engines, args.timeout)
            rows.append(r)
            if r["status"] == "ok":
                msg = (f"N={N:4d} k={k}: build {r['build_s']:.3f} s, J+grad {r['solve_s']:.2f} s, "
                       f"peak {r['peak_rss_mb']:.0f} MB, sanity {'ok' if r['sanity_ok'] else 'FAIL'}")
            else:
                msg = f"N={N:4d} k={k}: {r['status']} after {r['wall_s']:.1f} s"
            print(msg, file=sys.stderr, flush=True)
            if r["status"] != "ok":
                skipped = [n for n in sizes if n > N]
                if skipped:
                    print(f"  skipping N={','.join(map(str, skipped))} for k={k}", file=sys.stderr, flush=True)
                break
    print()
    print_table(rows, args.engines, args.markdown)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "args": vars(args), "rows": rows}, fh, indent=2)
    bad = [r for r in rows if r["status"] == "ok" and not r["sanity_ok"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
