#!/usr/bin/env python3
"""Time of the exact mean of every LLM estimator on a sequence case of the size the issue names.

    python benchmarks/estimators_benchmark.py [--group 8] [--repeat 3]

The case: 2 prompts, vocabulary {a, b, <eos>}, max_length 4 (31 completions per prompt), tabular
softmax logits (one parameter per prompt, prefix and token: 90), a reward per prompt that takes
two values, a uniform reference with beta = 1/10, a stale point for the clipped surrogate.  Two
points: theta = 0 (the policy is rational: exact fmpq) and theta_j = (j mod 7 - 3)/5 (the softmax
is irrational: arb balls, certified).  For each estimator: the wall time of its exact mean alone
(``pgverify.sequence.estimators.moments(..., second=False)``, tables built once beforehand), best
of ``--repeat``; then the total, the time of the full ``analyse`` (means, variances, Jacobians) of
every estimator, and that of the default report (``pgverify estimators``: the default estimators,
exact, then with the Monte Carlo check and the text report).
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

import sympy  # noqa: E402

from pgverify.sequence.estimators import (ADVANTAGES, AGGREGATIONS, KL_TERMS, NotRun, analyse,  # noqa: E402
                                          moments)
from pgverify.sequence.objective import SequenceTables  # noqa: E402
from pgverify.sequence.report import render_text  # noqa: E402
from pgverify.sequence.sampling import DEFAULT_BATCHES  # noqa: E402
from tests.sequence_estimators.helpers import make_case  # noqa: E402


def reward(x, o):
    if x == "easy":
        return 1 if o[0] == "a" else 0
    return 1 if len(o) >= 3 and o[-1] == "b" else 0


def case(irrational: bool):
    base = make_case(prompts=("easy", "hard"), max_length=4, reward=reward,
                     reference=lambda x, p: {"a": sympy.Rational(1, 3), "b": sympy.Rational(1, 3),
                                             "<eos>": sympy.Rational(1, 3)},
                     beta=sympy.Rational(1, 10), clip_epsilon=sympy.Rational(1, 5),
                     old_point=lambda s: sympy.Rational(1, 10))
    if irrational:
        pt = {p: sympy.Rational(j % 7 - 3, 5) for j, p in enumerate(base.parameters)}
        from dataclasses import replace
        base = replace(base, point=pt)
    return base


def names():
    out = []
    for a in ADVANTAGES:
        for g in AGGREGATIONS:
            out.append(a if g == "sum" else f"{a}+{g}")
    for k in KL_TERMS:
        out += [f"rloo+{k}", f"grpo+seq_mean+{k}"]
    out += ["rloo+clip", "grpo+seq_mean+clip", "grpo+seq_mean+k3_loss+clip", "dr_grpo+max_len+clip"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-analyse", action="store_true", help="skip the full analyse timing")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus; G = {args.group}")
    for irr in (False, True):
        seq = case(irr)
        t = time.perf_counter()
        tb = SequenceTables(seq)
        t_tab = time.perf_counter() - t
        print(f"\npoint: {'theta_j = (j mod 7 - 3)/5 (balls)' if irr else 'theta = 0 (exact)'}; "
              f"{len(seq.parameters)} parameters, {sum(len(tb.comps[x]) for x in seq.prompts)} completions; "
              f"tables {t_tab:.3f} s")
        total = 0.0
        for nm in names():
            best, how = float("inf"), ""
            for _ in range(args.repeat):
                t = time.perf_counter()
                try:
                    mo = moments(seq, nm, group=args.group, tables=tb, second=False)
                    how = f"{mo['method']}" + (f", {mo['multisets']} multisets" if mo["multisets"] else "")
                except NotRun as e:
                    how = f"not run: {e}"
                best = min(best, time.perf_counter() - t)
            total += best
            print(f"  {nm:32s} {best * 1000:9.1f} ms  {how}")
        print(f"  {'every estimator (means)':32s} {total:9.3f} s")
        if not args.no_analyse:
            t = time.perf_counter()
            analyse(seq, names(), group=args.group)
            print(f"  full analyse (means, variances, Jacobians of {len(names())} estimators): "
                  f"{time.perf_counter() - t:.2f} s")
            # what `pgverify estimators` does on this case: the default estimators, their means,
            # variances and Jacobians, the Monte Carlo check, the text report
            t = time.perf_counter()
            res = analyse(seq, group=args.group)
            t_exact = time.perf_counter() - t
            res = analyse(seq, group=args.group, mc={"batches": DEFAULT_BATCHES, "seed": 0})
            render_text(res)
            print(f"  default report ({len(res.estimators)} estimators): {t_exact:.2f} s exact, "
                  f"{time.perf_counter() - t - t_exact:.2f} s with the Monte Carlo check "
                  f"({DEFAULT_BATCHES} batches each)")


if __name__ == "__main__":
    main()
