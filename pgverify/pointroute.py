"""Checking at the point with the matrix engine pair: which number system, and the comparisons.

:func:`choose_route` picks, from the case's size and its point:

``exact``
    every value and derivative at the point is rational and the chain is within the exact
    solver's budget: python-flint rationals (:mod:`pgverify.engines.matrix`);
``numeric``
    an irrational point on a small case: the 60-digit engines of :mod:`pgverify.algebra`;
``certified``
    otherwise (or when asked): float64 with a rigorous bound on every result.

:func:`run_matrix` runs the pair (and the trajectory sum where enumeration is small) and
compares them; :func:`certified_quantity` and :func:`certified_families` present float64
results with their bounds.
"""
from __future__ import annotations

import numpy as np

from .chain import Irrational, NotFinite, compile_chain
from .compare import Comparison
from .engines import matrix
from .engines.base import FAMILIES
from .errors import EngineError, UsageError
from .montecarlo.certified import Bounded

__all__ = ["choose_route", "run_matrix", "compare_pair", "certified_value", "tangent_directions",
           "trajectory_too_large", "SMALL_NUMERIC", "TRAJECTORY_TRANSITIONS"]

#: An irrational point is computed in 60-digit arithmetic up to this many transitions and parameters.
SMALL_NUMERIC = {"transitions": 300, "parameters": 64}
#: Without a horizon, exact rationals are chosen automatically up to this many reachable states
#: (the dense rational solves grow as states^3 times the size of the numbers: about 1.6 s per
#: solve at 1000 states, and the tangent's right-hand sides carry V's large denominators).
EXACT_AUTO_STATES = 300
#: Exact arithmetic with a horizon: most transition-steps (horizon x transitions).
EXACT_HORIZON_WORK = 1e5
#: The trajectory sum is tried only up to this many reachable transitions (and horizon x transitions).
TRAJECTORY_TRANSITIONS = 2_000
#: With cycles and no horizon the sum is cut and only bounded: tried up to this many transitions.
CYCLIC_TRAJECTORY_TRANSITIONS = 64


def choose_route(case, mode: str):
    """(route, reason, chain): route is "exact", "numeric" or "certified" (see the module docstring).

    ``mode``: "auto" / "at-point" choose; "exact" and "certified" force one (exact raises a
    UsageError, with the reason, where it cannot be had).
    """
    if mode != "certified":
        try:
            chain = compile_chain(case, "exact")
        except Irrational as exc:
            chain, why = None, f"the point is irrational ({exc})"
        except NotFinite as exc:
            chain, why = None, f"a value is not finite at the point ({exc})"
        if chain is not None:
            size = _exact_size_problem(chain, forced=(mode == "exact"))
            if size is None:
                return "exact", (f"every value at the point is rational; {chain.S} reachable states, "
                                 f"{chain.T} transitions: exact rationals"), chain
            why = size
        if mode == "exact":
            raise UsageError(f"{case.name}: cannot work in exact arithmetic: {why}; use --certified")
        n = len(case.parameters)
        transitions = sum(len(case.P[s].get(a, ())) for s in case.nonterminal for a in case.actions[s])
        if chain is None and transitions <= SMALL_NUMERIC["transitions"] and n <= SMALL_NUMERIC["parameters"]:
            return "numeric", f"{why}; a small case: 60-digit arithmetic", None
        reason = f"{why}: float64 with certified bounds"
    else:
        reason = "certified float64 asked for (--certified)"
    if mode != "certified" and chain is not None:  # rational but too large: round the exact chain
        from .chain import _to_float

        return "certified", reason, _to_float(chain)
    try:
        chain = compile_chain(case, "float")
    except NotFinite as exc:
        raise EngineError(f"{case.name}: cannot work in float64: {exc}") from None
    return "certified", reason, chain


def _exact_size_problem(chain, forced=False) -> str | None:
    limit = matrix.EXACT_DENSE_LIMIT if forced else EXACT_AUTO_STATES
    if chain.horizon is None and chain.S > limit:
        return (f"{chain.S} reachable states are over the exact solver's "
                + (f"limit ({limit})" if forced else f"automatic limit ({limit}; --exact allows up to "
                   f"{matrix.EXACT_DENSE_LIMIT})"))
    if chain.horizon is not None and chain.horizon * max(chain.T, 1) > EXACT_HORIZON_WORK:
        return (f"horizon x transitions = {chain.horizon} x {chain.T} is over the exact budget "
                f"({EXACT_HORIZON_WORK:.0e})")
    return None


def tangent_directions(chain):
    """None (one column per parameter) when within budget, else the random directions."""
    columns = sum(1 for c in (chain.d_pi, chain.d_P, chain.d_r) if len(c)) + (1 if chain.d_gamma else 0)
    work = max(columns, 1) * chain.n * max(chain.T, 1) * (chain.horizon or 1)
    if chain.horizon is None and chain.kind == "exact":
        work = max(columns, 1) * chain.n * chain.S ** 2  # a dense p-adic solve per column
    if work <= matrix.TANGENT_WORK_LIMIT[chain.kind]:
        return None
    return matrix.random_directions(chain.n)


def run_matrix(chain):
    """The tangent and adjoint engines on the chain: {"bellman": ..., "occupancy": ...}."""
    solution = matrix.solve_values(chain) if chain.horizon is None else None
    results = {"occupancy": matrix.adjoint(chain, solution=solution)}
    results["bellman"] = matrix.tangent(chain, solution=solution, directions=tangent_directions(chain))
    return results


def _has_cycle(chain) -> bool:
    """Whether the chain's support graph has a cycle (then the trajectory sum is cut and only bounded)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    live = chain.tr_next >= 0
    src = chain.pair_state[chain.tr_pair][live]
    dst = chain.tr_next[live]
    if np.any(src == dst):
        return True
    g = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(chain.S, chain.S))
    k, _ = connected_components(g, directed=True, connection="strong")
    return k < chain.S


def trajectory_too_large(chain) -> str | None:
    """A reason not to enumerate trajectories, or None."""
    if (chain.T > TRAJECTORY_TRANSITIONS or (chain.horizon or 1) * chain.T > 50 * TRAJECTORY_TRANSITIONS
            or (chain.horizon is None and chain.T > CYCLIC_TRAJECTORY_TRANSITIONS and _has_cycle(chain))):
        return (f"{chain.S} reachable states and {chain.T} transitions"
                + (f" over a horizon of {chain.horizon}" if chain.horizon else "")
                + ": trajectories are not enumerated on a chain this large (the tangent and adjoint "
                  "engines verify it)")
    return None


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------
def _pair_ok(alg, a, b):
    """(ok, proof, |difference|) for exact rationals (alg: the exact Algebra) or Bounded floats."""
    if isinstance(a, Bounded):
        diff = abs(float(a.v) - float(b.v))
        allowed = (_err(a) + _err(b)) * (1 + 1e-12)
        ok = bool(diff <= allowed)
        return ok, ("certified" if ok else None), diff
    ok = a == b
    return ok, ("exact-at-point" if ok else None), float(abs(a - b))


def compare_pair(alg, results, names):
    """Compare the tangent (bellman) with the adjoint (occupancy): J, the gradient and the families
    (per parameter), or along the tangent's random directions."""
    tan, adj = results["bellman"], results["occupancy"]
    out = []
    ok, proof, diff = _pair_ok(alg, adj.J, tan.J)
    out.append(Comparison(("bellman", "occupancy"), "J", ok, proof, diff))
    if tan.grad is not None:
        for j, p in enumerate(names):
            ok, proof, diff = _pair_ok(alg, adj.grad[j], tan.grad[j])
            out.append(Comparison(("bellman", "occupancy"), f"d/d{p}", ok, proof, diff))
        for f in FAMILIES:
            for j, p in enumerate(names):
                ok, proof, diff = _pair_ok(alg, adj.families[f][j], tan.families[f][j])
                out.append(Comparison(("bellman", "occupancy"), f"{f} d/d{p}", ok, proof, diff))
        return out
    for k, v in enumerate(tan.info["directions"]):
        along = _dot(adj.grad, v)
        ok, proof, diff = _pair_ok(alg, along, tan.info["directional"][k])
        out.append(Comparison(("bellman", "occupancy"), f"d/dv{k + 1}", ok, proof, diff))
        for f in FAMILIES:
            ok, proof, diff = _pair_ok(alg, _dot(adj.families[f], v), tan.info["directional_families"][k][f])
            out.append(Comparison(("bellman", "occupancy"), f"{f} d/dv{k + 1}", ok, proof, diff))
    return out


def _dot(values, v):
    """sum_j values[j] v[j] exactly (rationals) or with a bound (Bounded)."""
    if values and isinstance(values[0], Bounded):
        vals = np.fromiter((x.v for x in values), float, len(values))
        errs = np.fromiter((_err(x) for x in values), float, len(values))
        w = np.asarray(v, dtype=float)
        terms = Bounded(vals, errs) * w
        return terms.sum(0) if len(vals) else Bounded(0.0)
    out = 0
    for x, c in zip(values, v):
        out = out + x * c
    return out


def _err(x) -> float:
    e = x.e
    if type(e) is float:  # a Bounded.scalar (the engines' per-parameter results)
        return e
    return float(e) if np.ndim(e) == 0 else float(np.max(e))


def certified_value(x) -> tuple[float, float]:
    """(float, bound) of a Bounded scalar."""
    return float(x.v), _err(x)

