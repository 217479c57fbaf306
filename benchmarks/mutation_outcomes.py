"""Count the outcomes of the mutation fuzzer (tests/fuzz/test_mutations.py) over many mutants.

Each mutant (a case file of cases/ or docs/examples/ with lines deleted, duplicated or swapped,
numbers replaced by hostile ones, tokens inserted, YAML bombs and deep nesting added) is checked
with ``pgverify check MUTANT --no-mc`` in this process, as the fuzzer's tests do, and ends as one of
exit 0, exit 1, exit 2, traceback, timeout (past --time-limit seconds) or memory (a MemoryError
under an address-space limit of --memory-gb, set with ``resource.setrlimit(RLIMIT_AS)``).

    python benchmarks/mutation_outcomes.py                     # the default run's 120 and the slow run's 1500
    python benchmarks/mutation_outcomes.py --first 0 --count 200

Prints the counts, the slowest mutants and the peak resident memory of the process, and each
mutant whose outcome is not an exit status (with its seed, to replay it with the fuzzer's tests).
The README's "Reliability" section quotes a run of this script.
"""
from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz.test_mutations import MUTANTS, OUTCOMES, SLOW_MUTANTS, TIME_LIMIT, run_mutant  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--count", type=int, default=MUTANTS + SLOW_MUTANTS,
                    help=f"number of mutants (default {MUTANTS + SLOW_MUTANTS}: the default and slow runs' seeds)")
    ap.add_argument("--time-limit", type=int, default=TIME_LIMIT, help=f"seconds per mutant (default {TIME_LIMIT})")
    ap.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit of the process (default 4)")
    args = ap.parse_args(argv)
    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.chdir(ROOT)
    counts: collections.Counter = collections.Counter()
    bad, times = [], []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first, args.first + args.count):
            t0 = time.perf_counter()
            outcome, source, detail = run_mutant(seed, Path(tmp), args.time_limit)
            dt = time.perf_counter() - t0
            counts[outcome] += 1
            times.append((dt, seed, source, outcome))
            if outcome not in ("exit 0", "exit 1", "exit 2"):
                bad.append((seed, source, outcome, detail))
            (Path(tmp) / f"mutant-{seed}.yaml").unlink(missing_ok=True)
    total = time.perf_counter() - t_all
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"mutants: {args.count} (seeds {args.first}..{args.first + args.count - 1}); "
          f"time limit {args.time_limit} s each; address space limited to {args.memory_gb:g} GB")
    for outcome in OUTCOMES:
        print(f"  {outcome:10s} {counts[outcome]:6d}")
    times.sort(reverse=True)
    print(f"wall time {total:.1f} s; median {sorted(t for t, *_ in times)[len(times) // 2]:.3f} s per mutant; "
          f"peak resident memory of the process {peak_mb:.0f} MB")
    print("slowest: " + "; ".join(f"seed {s} ({src}, {o}) {t:.2f} s" for t, s, src, o in times[:5]))
    for seed, source, outcome, detail in bad:
        print(f"\n=== seed {seed} of {source}: {outcome}\n{detail[:3000]}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
