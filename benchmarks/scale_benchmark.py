#!/usr/bin/env python3
"""Time ``pgverify check --no-mc`` end to end on large cases, against a minimal scipy computation.

Cases
-----
* ``random-S``: :func:`pgverify.testing.random_cases.random_tabular_case` (seed 0): S states, 2-4
  actions, 2-5 successors with probabilities in multiples of 1/8, reward -1 a step and +1 on
  reaching the terminal state, tabular softmax at theta = 0, discount 19/20 or 99/100, and with
  a horizon of 50 (discount 1) where named ``-h50``;
* FrozenLake-v1 8x8, CliffWalking-v1 and Taxi-v4, imported with ``pgverify import gymnasium``
  (skipped when gymnasium is not installed);
* ``chain-100-2``: the back-jump chain of ``chain_benchmark.py`` (N = 100, k = 2), with ``--symbolic``.

What is measured
----------------
* ``check``: the wall clock of ``pgverify check FILE --no-mc --json`` in a subprocess (loading,
  validation, the engines, the comparisons and the output; the interpreter's start-up, about
  0.6 s, included), and its peak resident memory (GNU time's %M where /usr/bin/time exists,
  else ``ru_maxrss`` of the children so far);
* ``engines``: the ``seconds`` field of the JSON: ``check()`` after the case is loaded;
* ``minimal``: a minimal numpy/scipy computation of the same numbers at the point, on arrays taken
  from pgverify's own compiled chain (:func:`pgverify.chain.compile_chain`, not timed): one sparse
  LU of I - gamma P_pi (GMRES above 3000 states, where the LU fills in), the value and the adjoint
  (occupancy) solves, and the contraction sum_s d(s) sum_a grad pi(a|s) Q(s, a) over the policy's
  derivative entries; with a horizon, the backward and forward sweeps.  Its J must agree with
  pgverify's to a relative 1e-9 (checked), and ``ratio`` = engines / minimal.

Usage: ``python benchmarks/scale_benchmark.py [--markdown] [--only NAME,...] [--max-states S]``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _random(S, gamma="19/20", horizon=None):
    from pgverify.testing.random_cases import random_tabular_case, to_yaml

    return to_yaml(random_tabular_case(S, gamma=gamma, horizon=horizon))


class _gym:
    """Writes the case with ``pgverify import gymnasium`` (instead of returning its text)."""

    def __init__(self, env, *options):
        self.args = [env, *options]

    def write(self, path):
        subprocess.run([sys.executable, "-m", "pgverify.cli", "import", "gymnasium", *self.args, "-o", path],
                       check=True, capture_output=True)


def _chain():
    import importlib.util

    import yaml

    spec = importlib.util.spec_from_file_location("chain_benchmark", HERE / "chain_benchmark.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return yaml.safe_dump(mod.chain_dict(100, 2))


CASES = [
    ("random-100", lambda: _random(100), []),
    ("random-100-g0.99", lambda: _random(100, "99/100"), []),
    ("random-100-h50", lambda: _random(100, "1", 50), []),
    ("random-1000", lambda: _random(1000), []),
    ("random-1000-exact", lambda: _random(1000), ["--exact"]),
    ("random-1000-g0.99", lambda: _random(1000, "99/100"), []),
    ("random-1000-h50", lambda: _random(1000, "1", 50), []),
    ("random-10000", lambda: _random(10_000), []),
    ("random-100000", lambda: _random(100_000), []),
    ("FrozenLake-8x8", _gym("FrozenLake-v1", "--map", "8x8"), []),
    ("CliffWalking-v1", _gym("CliffWalking-v1"), []),
    ("Taxi-v4", _gym("Taxi-v4"), []),
    ("chain-100-2", _chain, ["--symbolic"]),
]


def minimal(path) -> tuple[float, float]:
    """(seconds, J) of the minimal scipy computation (see the module docstring)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import gmres, splu

    import pgverify
    from pgverify.chain import compile_chain

    ch = compile_chain(pgverify.load_case(path), "float")
    S, pair_state, tr_pair, tr_next = ch.S, ch.pair_state, ch.tr_pair, ch.tr_next
    pi, P, r, rho0, gamma = ch.pi, ch.P, ch.r, ch.rho0, ch.gamma
    idx, par, val = ch.d_pi.idx, ch.d_pi.par, ch.d_pi.val
    t0 = time.perf_counter()
    tr_state = pair_state[tr_pair]
    piP = pi[tr_pair] * P
    live = tr_next >= 0
    r_pi = np.bincount(tr_state, piP * r, minlength=S)
    M = sp.csr_matrix((piP[live], (tr_state[live], tr_next[live])), shape=(S, S))
    if ch.horizon is None:
        A = (sp.identity(S, format="csc") - gamma * M).tocsc()
        if S <= 3000:
            lu = splu(A)
            V, d = lu.solve(r_pi), lu.solve(rho0, trans="T")
        else:
            V = gmres(A, r_pi, rtol=1e-13, atol=0.0, restart=60, maxiter=30)[0]
            d = gmres(A.T.tocsr(), rho0, rtol=1e-13, atol=0.0, restart=60, maxiter=30)[0]
        Vn = np.where(live, V[np.where(live, tr_next, 0)], 0.0)
        Q = np.bincount(tr_pair, P * (r + gamma * Vn), minlength=len(pi))
        grad = np.bincount(par, d[pair_state[idx]] * val * Q[idx], minlength=ch.n)
        J = float(rho0 @ V)
    else:
        H = ch.horizon
        Vs = [np.zeros(S)]
        Qs = []
        for _ in range(H):
            V = Vs[-1]
            Vn = np.where(live, V[np.where(live, tr_next, 0)], 0.0)
            Q = np.bincount(tr_pair, P * (r + gamma * Vn), minlength=len(pi))
            Qs.append(Q)
            Vs.append(np.bincount(pair_state, pi * Q, minlength=S))
        Qs.reverse()
        mu, grad, gt = rho0.copy(), np.zeros(ch.n), 1.0
        MT = M.T.tocsr()
        for t in range(H):
            grad += np.bincount(par, gt * mu[pair_state[idx]] * val * Qs[t][idx], minlength=ch.n)
            mu, gt = MT @ mu, gt * gamma
        J = float(rho0 @ Vs[-1])
    return time.perf_counter() - t0, J


def run(name, make, flags, workdir, timeout):
    path = os.path.join(workdir, f"{name}.yaml")
    if isinstance(make, _gym):
        make.write(path)
    else:
        Path(path).write_text(make())
    cmd = [sys.executable, "-m", "pgverify.cli", "check", path, "--no-mc", "--json", *flags]
    rss_file = os.path.join(workdir, "rss")
    if os.path.exists("/usr/bin/time"):  # GNU time: the peak resident memory of this run alone
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"case": name, "error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if os.path.exists(rss_file):
        rss = before = int(Path(rss_file).read_text().split()[-1])
    if proc.returncode not in (0, 1):
        return {"case": name, "error": proc.stderr.strip()[-300:]}
    res = json.loads(proc.stdout)
    out = {"case": name, "flags": " ".join(flags), "states": None, "parameters": len(res["parameters"]),
           "check": wall, "engines": res["seconds"], "rss_mb": max(rss, before) / 1024, "mode": res["mode"],
           "proof": res["proof"], "verified": res["verified"], "J": res["objective"]["float"],
           "bound": (res.get("bound") or {}).get("objective"), "directions": (res.get("tangent") or {}).get("directions")}
    if "--symbolic" not in flags:
        secs, J = minimal(path)
        out["minimal"] = secs
        out["ratio"] = res["seconds"] / secs if secs > 0 else None
        out["minimal_agrees"] = abs(J - res["objective"]["float"]) <= 1e-9 * max(1.0, abs(J))
    out["expression_present"] = res["objective"]["expression"] is not None
    import pgverify

    out["states"] = len(pgverify.load_case(path).states) if out["parameters"] < 50_000 else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--only", default=None)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    chosen = [c for c in CASES if args.only is None or c[0] in args.only.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, flags in chosen:
            try:
                row = run(name, make, flags, tmp, args.timeout)
            except subprocess.CalledProcessError as exc:
                row = {"case": name, "error": f"import failed: {exc.stderr.decode()[-200:]}"}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.markdown:
        print("| case | states / parameters | mode (proof) | check, end to end (s) | engines (s) | minimal scipy (s) "
              "| ratio | peak memory (MB) | verified |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                print(f"| {r['case']} | | | {r['error']} | | | | | |")
                continue
            mini = f"{r['minimal']:.4f}" if "minimal" in r else "-"
            ratio = f"{r['ratio']:.0f}" if r.get("ratio") else "-"
            print(f"| {r['case']}{' `' + r['flags'] + '`' if r['flags'] else ''} | {r['states'] or '-'} / "
                  f"{r['parameters']} | {r['mode']} ({r['proof']}) | {r['check']:.2f} | {r['engines']:.2f} | {mini} "
                  f"| {ratio} | {r['rss_mb']:.0f} | {r['verified']} |")
    else:
        for r in rows:
            print(r)


if __name__ == "__main__":
    main()
