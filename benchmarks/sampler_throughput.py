#!/usr/bin/env python3
"""Transitions per second of pgverify's vectorised sampler, against a plain per-step loop over
Gymnasium's FrozenLake (the optional extra: ``pip install gymnasium``).

    python benchmarks/sampler_throughput.py [--episodes 200000] [--repeat 3]

pgverify samples ``cases/frozenlake_4x4.yaml`` (uniform policy at theta = 0, horizon 100) and the
other cases; Gymnasium runs ``FrozenLake-v1`` (4x4, slippery) with uniformly random actions, one
``env.step`` per transition, for a fixed number of transitions.  Each figure is the best of
``--repeat`` runs; the machine and versions are printed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pgverify  # noqa: E402
from pgverify.montecarlo import sample, tabulate  # noqa: E402


def pgverify_rate(path, episodes, repeat):
    mdp = tabulate(pgverify.load_case(path))
    best = 0.0
    for k in range(repeat):
        t = time.perf_counter()
        ep = sample(mdp, episodes, seed=k)
        best = max(best, ep.lengths.sum() / (time.perf_counter() - t))
    return best


def gymnasium_rate(transitions, repeat):
    try:
        import gymnasium
    except ImportError:
        return None
    best = 0.0
    for k in range(repeat):
        env = gymnasium.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
        rng = np.random.default_rng(k)
        env.reset(seed=k)
        t = time.perf_counter()
        for _ in range(transitions):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
            if terminated or truncated:
                env.reset()
        best = max(best, transitions / (time.perf_counter() - t))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gym-transitions", type=int, default=200_000)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} cpu_count={os.cpu_count()} python={platform.python_version()} "
          f"numpy={np.__version__}")
    print("| case | transitions/s (pgverify, vectorised) |")
    print("|---|---|")
    rates = {}
    for stem in ("frozenlake_4x4", "short_corridor", "finite_horizon_chain", "two_state_softmax"):
        rates[stem] = pgverify_rate(ROOT / "cases" / f"{stem}.yaml", args.episodes, args.repeat)
        print(f"| {stem} | {rates[stem]:.3g} |")
    gym = gymnasium_rate(args.gym_transitions, args.repeat)
    if gym is None:
        print("Gymnasium is not installed: pip install gymnasium (for the per-step comparison)")
    else:
        print(f"Gymnasium FrozenLake-v1, per-step loop: {gym:.3g} transitions/s; "
              f"ratio pgverify/Gymnasium on FrozenLake 4x4: {rates['frozenlake_4x4'] / gym:.1f}x")


if __name__ == "__main__":
    main()
