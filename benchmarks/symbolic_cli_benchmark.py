#!/usr/bin/env python3
"""End-to-end wall clock of ``pgverify check ... --symbolic --json`` on the benchmark chain.

What is measured
----------------
* ``chain N=100 k=2 --symbolic --json --no-mc``: the chain of ``chain_benchmark.py``
  (``chain_dict(100, 2)``) written to a temporary YAML file, and the command line run in a
  subprocess (``python -m pgverify.cli``), wall clock from start to exit: interpreter start,
  imports, parsing, the three engines, the proof, the printing of every expression and the JSON.
  The JSON is checked: J's and every gradient component's ``expression`` is present in full.
* the same without ``--json`` (the text summary);
* ``softmax-50 --json --no-mc``: one state, 50 actions, a tabular softmax (50 parameters), which
  spent 54 s in ``sympy.simplify`` deciding whether the policy's derivatives are zero;
* with ``--mc``, also the chain with Monte Carlo on (the default of ``pgverify check``): the
  sampler is not part of this work, and on this chain (J ~ -6.6e20, every episode cut at
  10,000 steps) it dominates.

Each command runs ``--repeat`` times (default 3); the table shows the minimum and the median.
The ``seconds`` field of the JSON (time inside ``pgverify.check``) is shown as well.

Usage::

    python benchmarks/symbolic_cli_benchmark.py [--repeat 3] [--mc]

Target (from the scale issue): the chain N = 100, k = 2 with ``--symbolic`` end to end under
2 s, with the expression present.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chain_benchmark import chain_dict, git_revision, machine_info  # noqa: E402


def softmax_dict(n: int) -> dict:
    acts = [f"a{i}" for i in range(n)]
    return {"name": f"softmax-{n}", "states": ["S", "done"], "terminal": ["done"], "actions": acts,
            "start": "S", "policy": {"softmax": "tabular"}, "transitions": {"S": {a: "done" for a in acts}},
            "rewards": {"S": {a: i % 7 for i, a in enumerate(acts)}}}


def run(args: list, repeat: int) -> dict:
    cmd = [sys.executable, "-m", "pgverify.cli", *args]
    walls, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}")
        out = proc.stdout
    return {"min": min(walls), "median": statistics.median(walls), "walls": walls, "stdout": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mc", action="store_true", help="also time the chain with Monte Carlo on")
    a = ap.parse_args(argv)
    info = machine_info()
    print(f"machine: cpu_count={info['cpu_count']} python={info['python']} sympy={info['sympy']} "
          f"python-flint={info['python-flint']}; pgverify {git_revision()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        chain = os.path.join(tmp, "chain-100-2.yaml")
        softmax = os.path.join(tmp, "softmax-50.yaml")
        with open(chain, "w") as fh:
            yaml.safe_dump(chain_dict(100, 2), fh)
        with open(softmax, "w") as fh:
            yaml.safe_dump(softmax_dict(50), fh)
        r = run(["check", chain, "--symbolic", "--json", "--no-mc"], a.repeat)
        data = json.loads(r["stdout"])
        quantities = [data["objective"]] + list(data["gradient"].values())
        ok = all(q["expression"] is not None for q in quantities)
        lengths = ", ".join(str(len(q["expression"] or "")) for q in quantities)
        rows.append(("chain N=100 k=2 --symbolic --json --no-mc", r, data["seconds"],
                     f"verified={data['verified']}; expressions present: {ok} (lengths {lengths})"))
        r = run(["check", chain, "--symbolic", "--no-mc"], a.repeat)
        rows.append(("chain N=100 k=2 --symbolic --no-mc (text)", r, None, ""))
        r = run(["check", softmax, "--json", "--no-mc"], a.repeat)
        data = json.loads(r["stdout"])
        rows.append(("softmax-50 --json --no-mc", r, data["seconds"],
                     f"verified={data['verified']}; J = {data['objective']['value']}"))
        if a.mc:
            r = run(["check", chain, "--symbolic", "--json"], 1)
            data = json.loads(r["stdout"])
            rows.append(("chain N=100 k=2 --symbolic --json (Monte Carlo on)", r, data["seconds"], ""))
    print()
    print(f"{'command':52s} {'wall min (s)':>12s} {'median (s)':>10s} {'check() (s)':>11s}  notes")
    for name, r, secs, note in rows:
        s = f"{secs:.2f}" if secs is not None else "-"
        print(f"{name:52s} {r['min']:12.2f} {r['median']:10.2f} {s:>11s}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
