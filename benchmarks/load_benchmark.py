#!/usr/bin/env python3
"""Time loading and validating large tabular case files (``pgverify.load_case``).

The generated case ``random-S`` (seeded; the same S and seed give the same text)
---------------------------------------------------------------------------------
* states ``s0 .. s{S-1}`` and one terminal state ``T``; the episode starts in ``s0``;
* each state has 2 to 4 actions (``actions: {s: [a0, a1, ...]}``);
* each (state, action) goes to 2 to 5 distinct next states (``T`` among the candidates)
  with probabilities ``k/8`` (a random composition of 8) that add up to exactly 1;
* a reward per (state, action) drawn from -2..2 on about a third of the pairs
  (``rewards: {default: -1, s: {a: r}}``);
* discount ``19/20``, no horizon, policy ``{softmax: tabular}`` (one parameter
  ``theta_s_a`` per state and action, all 0 at the point).

S = 10**5 gives about 3 * 10**5 (state, action) pairs, 10**6 transitions and a 27 MB file.

What is measured (each size in its own subprocess, so that peak memory is its own)
----------------------------------------------------------------------------------
* ``write``: generating the YAML text and writing it (not part of the load);
* ``load``: ``pgverify.load_case(path)``: reading, composing (PyYAML's C loader where
  available), parsing, building the :class:`~pgverify.Case` and every validation;
* ``arrays``: ``pgverify.Case.from_arrays`` on the same MDP as dense exact arrays
  (mushroom-rl layout, only for S <= --arrays-max, since the arrays are S x A x S);
* ``peak RSS``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the subprocess after
  all of the above (the interpreter with sympy, numpy and networkx is about 100 MB of it).

A spot check compares a few entries of P, the policy and the rewards of the loaded case
with the generator's.

Usage::

    python benchmarks/load_benchmark.py [--sizes 1000,10000,100000] [--seed 1] [--keep DIR]
        [--arrays-max 2000] [--profile SIZE]

``--profile S`` runs one load of size S under cProfile and prints the 25 most expensive
functions (cumulative time).

Targets (from the project's issue): 10**5 states in seconds (under 30 s, ideally under 10),
10**4 in about a second or two.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

__all__ = ["generate", "case_text"]


def generate(n_states: int, seed: int = 1) -> dict:
    """The random MDP as plain data: ``actions``, ``P`` {s: {a: {s2: Fraction}}}, ``R`` {s: {a: int}}."""
    rng = random.Random(seed)
    states = [f"s{i}" for i in range(n_states)]
    candidates = states + ["T"]
    position = {c: i for i, c in enumerate(candidates)}
    actions, P, R = {}, {}, {}
    for s in states:
        acts = [f"a{k}" for k in range(rng.randint(2, 4))]
        actions[s] = acts
        P[s], R[s] = {}, {}
        for a in acts:
            m = rng.randint(2, 5)
            nexts = set()
            while len(nexts) < m:
                nexts.add(candidates[rng.randrange(len(candidates))])
            cuts = sorted(rng.sample(range(1, 8), m - 1))  # a composition of 8 into m positive parts
            parts = [b - a_ for a_, b in zip([0] + cuts, cuts + [8])]
            P[s][a] = {s2: Fraction(k, 8) for s2, k in zip(sorted(nexts, key=position.__getitem__), parts)}
            if rng.random() < 1 / 3:
                R[s][a] = rng.randint(-2, 2)
    return {"states": states, "actions": actions, "P": P, "R": R}


def _num(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def case_text(mdp: dict, name: str) -> str:
    """The case file (YAML, block style, one entry per line) of ``generate``'s MDP."""
    out = [f"name: {name}", "description: a seeded random tabular MDP (benchmarks/load_benchmark.py)",
           "states: [" + ", ".join(mdp["states"]) + ", T]", "terminal: [T]", "actions:"]
    for s in mdp["states"]:
        out.append(f"  {s}: [{', '.join(mdp['actions'][s])}]")
    out += ["start: s0", "discount: 19/20", "policy: {softmax: tabular}", "transitions:"]
    for s in mdp["states"]:
        out.append(f"  {s}:")
        for a, row in mdp["P"][s].items():
            out.append(f"    {a}:")
            out.extend(f"      {s2}: {_num(p)}" for s2, p in row.items())
    out += ["rewards:", "  default: -1"]
    for s in mdp["states"]:
        if mdp["R"][s]:
            out.append(f"  {s}:")
            out.extend(f"    {a}: {r}" for a, r in mdp["R"][s].items())
    return "\n".join(out) + "\n"


def arrays_of(mdp: dict):
    """Dense exact arrays p[s, a, s2], r[s, a, s2] (mushroom-rl layout; T is the last, all-zero state)."""
    import numpy as np

    idx = {s: i for i, s in enumerate(mdp["states"] + ["T"])}
    S = len(idx)
    A = max(len(a) for a in mdp["actions"].values())
    p = np.zeros((S, A, S), dtype=object)
    r = np.zeros((S, A, S), dtype=object)
    for s, by_a in mdp["P"].items():
        for k in range(A):
            a = f"a{k}"
            row = by_a.get(a)
            if row is None:  # fewer actions here: the missing ones repeat the first (same mean)
                row, a = by_a["a0"], "a0"
            for s2, prob in row.items():
                p[idx[s], k, idx[s2]] = prob
                r[idx[s], k, idx[s2]] = mdp["R"][s].get(a, -1)
    return p, r


def spot_check(case, mdp: dict, seed: int) -> None:
    import sympy

    rng = random.Random(seed + 99)
    for _ in range(50):
        s = rng.choice(mdp["states"])
        assert tuple(case.actions[s]) == tuple(mdp["actions"][s]), s
        for a, row in mdp["P"][s].items():
            got = {s2: sympy.Rational(e) for s2, e in case.P[s][a].items()}
            assert got == {s2: sympy.Rational(p.numerator, p.denominator) for s2, p in row.items()}, (s, a)
            for s2 in row:
                assert case.r[s][a].get(s2, 0) == mdp["R"][s].get(a, -1), (s, a, s2)
        pi = case.pi[s]
        assert set(pi) == set(mdp["actions"][s])
        assert sum(e.xreplace(case.point) for e in pi.values()) == 1


def run_one(n: int, seed: int, keep: str | None, arrays_max: int) -> dict:
    import resource

    import pgverify

    t0 = time.perf_counter()
    mdp = generate(n, seed)
    text = case_text(mdp, f"random-{n}")
    folder = keep or tempfile.mkdtemp(prefix="pgverify-load-")
    path = os.path.join(folder, f"random_{n}.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    case = pgverify.load_case(path)
    t_load = time.perf_counter() - t0
    spot_check(case, mdp, seed)
    n_trans = sum(len(row) for by_a in case.P.values() for row in by_a.values())
    t_arrays = None
    if n <= arrays_max:
        p, r = arrays_of(mdp)
        t0 = time.perf_counter()
        pgverify.Case.from_arrays(p, r, layout="mushroom", mu=0, gamma="19/20")
        t_arrays = time.perf_counter() - t0
    if not keep:
        os.unlink(path)
        os.rmdir(folder)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {"states": n, "pairs": sum(len(a) for a in mdp["actions"].values()), "transitions": n_trans,
            "megabytes": round(len(text.encode()) / 1e6, 1), "write_s": round(t_write, 2),
            "load_s": round(t_load, 2), "arrays_s": None if t_arrays is None else round(t_arrays, 2),
            "peak_rss_mb": round(rss)}


def profile(n: int, seed: int) -> None:
    import cProfile
    import pstats

    import pgverify

    mdp = generate(n, seed)
    folder = tempfile.mkdtemp(prefix="pgverify-load-")
    path = os.path.join(folder, f"random_{n}.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(case_text(mdp, f"random-{n}"))
    prof = cProfile.Profile()
    prof.enable()
    pgverify.load_case(path)
    prof.disable()
    os.unlink(path)
    os.rmdir(folder)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", help="write the case files into this folder and keep them")
    ap.add_argument("--arrays-max", type=int, default=2000)
    ap.add_argument("--profile", type=int, help="profile one load of this size")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    if args.profile:
        profile(args.profile, args.seed)
        return 0
    if args.one:
        print(json.dumps(run_one(args.one, args.seed, args.keep, args.arrays_max)))
        return 0
    import yaml

    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"PyYAML C loader: {hasattr(yaml, 'CSafeLoader')}")
    print(f"{'states':>8} {'pairs':>8} {'transitions':>12} {'MB':>6} {'load s':>8} {'from_arrays s':>14} "
          f"{'peak RSS MB':>12}")
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        cmd = [sys.executable, os.path.abspath(__file__), "--one", str(n), "--seed", str(args.seed),
               "--arrays-max", str(args.arrays_max)] + (["--keep", args.keep] if args.keep else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{n:>8} failed:\n{proc.stderr}")
            return 1
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        arrays = "-" if res["arrays_s"] is None else f"{res['arrays_s']:.2f}"
        print(f"{res['states']:>8} {res['pairs']:>8} {res['transitions']:>12} {res['megabytes']:>6} "
              f"{res['load_s']:>8.2f} {arrays:>14} {res['peak_rss_mb']:>12}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
