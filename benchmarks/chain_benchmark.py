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
* the peak resident memory of the subprocess (``resource.getrusage`` ``ru_maxrss``; about
  95 MB of it is the interpreter with sympy, flint and numpy imported);
* the 1-minute load average when the configuration started (timings are wall-clock);
* the degrees of J's numerator and denominator in each parameter (``degrees()`` of the
  numerator and denominator polynomials: sympy PolyElements or python-flint fmpz_mpoly,
  whichever field pgverify's Algebra uses) and the number of terms of the numerator;
* a sanity check: J and grad J at p = 1/2 (``alg.at_point``) against an independent float
  computation with numpy: V = numpy.linalg.solve(I - P, -1), J = V[c0]; grad J (and J once
  more) from the first-passage decomposition (see ``numpy_reference``: the naive
  dV = solve(I - P, dP V) cancels catastrophically for large N); all must agree to 1e-9
  relative.

When one run of a k exceeds the timeout (or fails), the larger N for that k are skipped.
Each subprocess's address space is capped (``--max-memory-gb``, default 8): without a cap,
chain-300-4 grows past 24 GB and brings in the kernel's OOM killer.

Usage::

    python benchmarks/chain_benchmark.py [--sizes 10,30,100,300] [--ks 1,2,4]
        [--timeout 120] [--engines bellman|all] [--max-memory-gb 8] [--markdown] [--json FILE]

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


def numpy_reference(N: int, k: int, p: float = 0.5) -> dict:
    """J and dJ/dp_j at p_j = p for all j, in floats with numpy (independent of pgverify).

    J: V = solve(I - P, -1) on c0..c{N-1}, J = V[c0] (what the issue asks for).

    grad J: *not* from dV = solve(I - P, (dP/dp_j) V): for these chains V[i] is nearly
    the same for all i (the walk drifts back to c0), so (dP V)[i] = V[i+1] - V[back] cancels
    catastrophically and that formula is wrong by 20% at N = 100 in float64 (it is kept
    as ``naive_grad`` for the record).  Instead the first-passage decomposition, which
    has no cancellation: the chain moves up by exactly one, so J = -sum_i tau_i with
    tau_i the expected time from c{i} to c{i+1}, and

        p_i tau_i - q_i * sum_{j=b_i}^{i-1} tau_j = 1     (q_i = 1 - p_i, b_i = back target),

    a lower-triangular system M tau = 1 (M an M-matrix); differentiating,
    M dtau = -(dM/dp_j) tau with (dM/dp_j tau)[i] = [i mod k = j] (tau_i + sum_{b_i}^{i-1} tau),
    all of one sign.  Both systems are solved with numpy.linalg.solve.
    """
    import numpy as np

    P = np.zeros((N, N))
    dP = np.zeros((k, N, N))
    M = np.zeros((N, N))
    dM = np.zeros((k, N, N))
    for i in range(N):
        j = i % k
        b = back_target(i)
        if i + 1 < N:
            P[i, i + 1] += p
            dP[j, i, i + 1] += 1.0
        P[i, b] += 1.0 - p
        dP[j, i, b] -= 1.0
        M[i, i] = p
        dM[j, i, i] = 1.0
        M[i, b:i] = -(1.0 - p)
        dM[j, i, b:i] = 1.0
    A = np.eye(N) - P
    V = np.linalg.solve(A, -np.ones(N))
    tau = np.linalg.solve(M, np.ones(N))
    grad = [float(-np.linalg.solve(M, -(dM[j] @ tau)).sum()) for j in range(k)]
    naive = [float(np.linalg.solve(A, dP[j] @ V)[0]) for j in range(k)]
    return {"J": float(V[0]), "J_first_passage": float(-tau.sum()), "grad": grad, "naive_grad": naive}


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


def source_digest() -> str:
    """A short hash of the pgverify sources that this interpreter imports (they change under
    active development; the hash tells which version a figure belongs to)."""
    import hashlib
    from pathlib import Path

    import pgverify

    root = Path(pgverify.__file__).resolve().parent
    h = hashlib.sha1()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:10]


def git_revision() -> str:
    """``git describe --always --dirty`` of the checkout pgverify is imported from, or '?'."""
    try:
        import pgverify

        repo = os.path.dirname(os.path.dirname(os.path.abspath(pgverify.__file__)))
        return subprocess.run(["git", "-C", repo, "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except Exception:
        return "?"


def numer_denom(x):
    """Numerator and denominator polynomials of an element of the symbolic domain: sympy's
    fraction field (``.numer``/``.denom``, PolyElements) or pgverify's python-flint field
    (``.n``/``.d``, fmpz_mpoly).  Both have ``degrees()`` (per generator) and ``len()`` (terms)."""
    if hasattr(x, "numer"):
        return x.numer, x.denom
    return x.n, x.d


def run_one(N: int, k: int, engines: str) -> dict:
    import pgverify
    from pgverify.algebra import Algebra
    from pgverify.engines import bellman

    out = {"N": N, "k": k, "engines": engines, "rss_after_import_mb": _maxrss_mb(), "src": source_digest()}
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
    num, den = numer_denom(J)
    out["domain"] = f"{type(alg.domain).__module__}.{type(alg.domain).__name__}"
    out["numer_degrees"] = [int(x) for x in num.degrees()]
    out["denom_degrees"] = [int(x) for x in den.degrees()]
    out["numer_terms"] = len(num)
    out["denom_terms"] = len(den)
    t0 = time.perf_counter()
    J_exact, _ = alg.at_point(J)
    grad_exact = [alg.at_point(g)[0] for g in grad]
    out["at_point_s"] = time.perf_counter() - t0
    out["J_value"] = str(J_exact)
    out["J_float"] = float(J_exact)
    out["grad_float"] = [float(g) for g in grad_exact]
    # the numpy reference, per parameter name p{j} (k may exceed N: unused p{j} are absent)
    ref = numpy_reference(N, k)
    names = out["params"]
    ref_grad = [ref["grad"][int(n[1:])] for n in names]
    naive = [ref["naive_grad"][int(n[1:])] for n in names]
    out["ref_J_float"] = ref["J"]
    out["ref_J_first_passage"] = ref["J_first_passage"]
    out["ref_grad_float"] = ref_grad
    out["J_rel_err"] = _rel(out["J_float"], ref["J"])
    out["J_rel_err_first_passage"] = _rel(out["J_float"], ref["J_first_passage"])
    out["grad_rel_err"] = max((_rel(a, b) for a, b in zip(out["grad_float"], ref_grad)), default=0.0)
    out["naive_grad_rel_err"] = max((_rel(a, b) for a, b in zip(out["grad_float"], naive)), default=0.0)
    out["sanity_ok"] = (out["J_rel_err"] <= REL_TOL and out["J_rel_err_first_passage"] <= REL_TOL
                        and out["grad_rel_err"] <= REL_TOL)
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


def _limit_memory(gb: float):
    """A preexec_fn for the child: cap its address space (so a configuration that explodes
    fails with MemoryError / SIGABRT instead of driving the whole machine into the OOM killer)."""
    def apply():
        import resource

        limit = int(gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def run_subprocess(N: int, k: int, engines: str, timeout: float, max_memory_gb: float = 0) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(N), str(k), "--engines", engines]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_limit_memory(max_memory_gb) if max_memory_gb > 0 else None)
    except subprocess.TimeoutExpired:  # subprocess.run kills the child
        return {"N": N, "k": k, "status": "timeout", "wall_s": time.perf_counter() - t0, "load1": load}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        if proc.returncode < 0:
            import signal

            how = f"killed by {signal.Signals(-proc.returncode).name}"
        else:
            how = f"exit {proc.returncode}"
        if "MemoryError" in (proc.stderr or "") or proc.returncode == -6:
            how += f"; out of memory? (limit {max_memory_gb:g} GB)" if max_memory_gb > 0 else "; out of memory?"
        return {"N": N, "k": k, "status": f"error ({how}): {tail[0][:120]}", "wall_s": wall, "load1": load}
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["status"] = "ok"
    data["wall_s"] = wall
    data["load1"] = load
    return data


def _degs(ds) -> str:
    return ",".join(str(x) for x in ds)


def table_rows(rows: list, engines: str) -> tuple[list, list]:
    solve_head = "J+grad symbolic (s)" if engines == "bellman" else "check(all) (s)"
    head = ["N", "k", "build (s)", solve_head, "peak RSS (MB)", "deg num", "deg den",
            "terms num", "J at p=1/2", "rel err J", "rel err grad", "sanity", "load", "src"]
    if engines != "bellman":
        head += ["verified", "proof", "not run / truncated"]
    body = []
    for r in rows:
        if r["status"] != "ok":
            line = [str(r["N"]), str(r["k"]), "", f"{r['status']} ({r['wall_s']:.0f} s)"] + [""] * (len(head) - 4)
            line[head.index("load")] = f"{r['load1']:.1f}"
            body.append(line)
            continue
        line = [
            str(r["N"]), str(r["k"]), f"{r['build_s']:.3f}", f"{r['solve_s']:.2f}",
            f"{r['peak_rss_mb']:.0f}", _degs(r["numer_degrees"]), _degs(r["denom_degrees"]),
            str(r["numer_terms"]), f"{r['J_float']:.6e}", f"{r['J_rel_err']:.1e}",
            f"{r['grad_rel_err']:.1e}", "ok" if r["sanity_ok"] else "FAIL", f"{r['load1']:.1f}", r["src"],
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
    ap.add_argument("--max-memory-gb", type=float, default=8.0,
                    help="address-space limit of each configuration's subprocess (0: none); default 8")
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
    print(f"pgverify: {git_revision()} (sources {source_digest()}; the 'src' column: the sources each "
          "configuration ran)")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(the 'load' column: 1-minute load average when each configuration started)")
    print(f"engines: {args.engines}; timeout {args.timeout:g} s per configuration", flush=True)
    sizes, ks = sorted(_ints(args.sizes)), _ints(args.ks)
    what = "J+grad" if args.engines == "bellman" else "check"
    rows = []
    for k in ks:
        for N in sizes:
            r = run_subprocess(N, k, args.engines, args.timeout, args.max_memory_gb)
            rows.append(r)
            if r["status"] == "ok":
                msg = (f"N={N:4d} k={k}: build {r['build_s']:.3f} s, {what} {r['solve_s']:.2f} s, "
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
    domains = sorted({r["domain"] for r in rows if r["status"] == "ok"})
    print(f"\nsymbolic domain: {', '.join(domains) or '-'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "args": vars(args), "rows": rows}, fh, indent=2)
    bad = [r for r in rows if r["status"] == "ok" and not r["sanity_ok"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
