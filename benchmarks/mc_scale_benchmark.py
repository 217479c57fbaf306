"""End-to-end wall clock and peak memory of ``pgverify check`` with sampling, on large cases.

Cases: FrozenLake 8x8, CliffWalking-v1 and Taxi-v4 imported from Gymnasium
(``pgverify import gymnasium ...``, tabular softmax at theta = 0, the env's horizon), and a
random tabular softmax case of 100 states (``pgverify.testing.random_cases.random_tabular_case(100)``).
Each run is one subprocess ``pgverify check CASE --json`` (default: ``--episodes auto``,
``--budget 5``), timed by the wall clock; peak resident memory is the child's ru_maxrss
(``resource.getrusage(RUSAGE_CHILDREN)``, measured in a fresh helper process per run so that
runs do not mask each other).  The machine, date and load average are printed with the table.

    python benchmarks/mc_scale_benchmark.py [--markdown] [--cases fl8,cliff,taxi,rand100] [-- extra check options]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = {
    "fl8": ["FrozenLake-v1", "--map", "8x8"],
    "cliff": ["CliffWalking-v1"],
    "taxi": ["Taxi-v4"],
}
PGVERIFY = [sys.executable, "-c", "import sys; from pgverify.cli import main; sys.argv[0] = 'pgverify'; main()"]
LABELS = {"fl8": "FrozenLake 8x8", "cliff": "CliffWalking-v1", "taxi": "Taxi-v4", "rand100": "random S=100"}

_RUNNER = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB on Linux
print(json.dumps({"wall": wall, "rss_kb": rss, "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr[-2000:]}))
"""


def make_cases(folder: Path, which) -> dict:
    out = {}
    for key in which:
        path = folder / f"{key}.yaml"
        if key == "rand100":
            from pgverify.testing.random_cases import random_tabular_case, to_yaml

            path.write_text(to_yaml(random_tabular_case(100)))
        else:
            subprocess.run([*PGVERIFY, "import", "gymnasium", *IMPORTS[key], "-o", str(path)],
                           check=True, capture_output=True)
        out[key] = path
    return out


def run(path: Path, extra) -> dict:
    cmd = [*PGVERIFY, "check", str(path), "--json", *extra]
    got = subprocess.run([sys.executable, "-c", _RUNNER, *cmd], capture_output=True, text=True, check=True)
    rec = json.loads(got.stdout)
    try:
        data = json.loads(rec["stdout"])
    except json.JSONDecodeError:
        data = {}
    mc = data.get("monte_carlo") or {}
    return {"wall": rec["wall"], "rss_mb": rec["rss_kb"] / 1024, "rc": rec["rc"], "verified": data.get("verified"),
            "episodes": mc.get("episodes"), "stopped": mc.get("stopped"), "inconclusive": mc.get("inconclusive"),
            "cut": mc.get("cut"), "consistent": mc.get("consistent"),
            "tests": sum(1 for e in mc.get("estimators", {}).values() for z in e["z"].values() if z is not None),
            "error": rec["stderr"] if rec["rc"] not in (0, 1) else ""}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--cases", default="fl8,cliff,taxi,rand100")
    ap.add_argument("extra", nargs="*", help="extra options of pgverify check (after --)")
    args = ap.parse_args()
    which = [c.strip() for c in args.cases.split(",") if c.strip()]
    print(f"# {datetime.date.today()}, {platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start; "
          f"pgverify check CASE --json {' '.join(args.extra)}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_cases(Path(tmp), which)
        rows = []
        for key in which:
            t0 = time.time()
            r = run(paths[key], args.extra)
            r["load"] = os.getloadavg()[0]
            rows.append((key, r))
            if not args.markdown:
                print(key, json.dumps(r), f"({time.time() - t0:.1f} s)", flush=True)
    if args.markdown:
        print("| case | wall clock (s) | peak RSS (MB) | verified | episodes | stopped | inconclusive / tests | cut |")
        print("|---|---|---|---|---|---|---|---|")
        for key, r in rows:
            print(f"| {LABELS[key]} | {r['wall']:.1f} | {r['rss_mb']:.0f} | {r['verified']} | {r['episodes']} | "
                  f"{r['stopped']} | {r['inconclusive']} / {r['tests']} | {r['cut']} |")


if __name__ == "__main__":
    main()
