r"""The trajectory engine: the likelihood-ratio formula summed over every trajectory.

.. math::

    J = \sum_\tau p(\tau) R(\tau), \qquad
    \nabla J = \sum_\tau p(\tau)\,\big[R(\tau)\,\nabla\log p(\tau) + \nabla R(\tau)\big],

    \log p(\tau) = \log\rho_0(s_0) + \sum_t \log\pi(a_t|s_t) + \sum_t \log P(s_{t+1}|s_t,a_t),

(Williams 1992; Sutton & Barto 2018, section 13.3), with R(tau) = sum_t gamma^t r_t.
The three parts of log p(tau) give the start, policy and dynamics families; the
pathwise term grad R(tau) gives the reward (and discount) families.

``p(tau) grad log p(tau)`` is accumulated as ``sum_i (prod_{k != i} f_k) grad f_i``
over the factors f_i of p(tau): the same number wherever p(tau) > 0, and still
defined where a factor vanishes at the point.

Trajectories are enumerated depth-first on the support graph (see
:mod:`pgverify.graph`).  The sum is exact with a horizon or when the reachable
support graph is acyclic.  With cycles and no horizon, trajectories are cut at a
length L and a rigorous bound on the remainder is computed at the point; the
result is then marked inexact.  An enumeration of more than ``limit``
trajectories is refused with the count, unless ``force``.
"""
from __future__ import annotations

import math

import mpmath
import sympy

from ..algebra import Algebra
from ..errors import EngineError, TooManyTrajectoriesError
from ..graph import count_trajectories, reachable_states
from .base import FAMILIES, EngineResult

__all__ = ["trajectory", "DEFAULT_LIMIT"]

#: Most trajectories enumerated without ``force``.
DEFAULT_LIMIT = 200_000
#: Most trajectories summed as rational functions of theta; beyond it the sum is taken at the
#: point (sums of many rational functions with exp(theta) generators grow slowly in size).
SYMBOLIC_BUDGET = 5_000
#: Most trajectories summed when cycles force a cut (the cut sum is computed at the point).
TRUNCATION_BUDGET = 20_000
MAX_TRUNCATION = 400


def trajectory(case, alg: Algebra, *, limit: int | None = None, force: bool = False, **_options) -> EngineResult:
    """J and grad J by summing over trajectories (see the module docstring).

    Raises
    ------
    TooManyTrajectoriesError
        When more than ``limit`` trajectories would be enumerated and not ``force``.

    References
    ----------
    Williams, R. J. (1992). Simple statistical gradient-following algorithms for connectionist
    reinforcement learning. Machine Learning 8, 229-256.
    """
    if limit is None:
        limit = DEFAULT_LIMIT
    length = case.horizon
    count = count_trajectories(case, length)
    truncated = False
    if count is None:  # cycles and no horizon: cut at the longest length within the budget
        truncated = True
        length, count = _truncation_length(case, min(limit, TRUNCATION_BUDGET))
        if length == 0:
            raise TooManyTrajectoriesError(count_trajectories(case, 1), limit,
                                           " (cycles and no horizon; not even length 1 fits)")
    elif count > limit and not force:
        raise TooManyTrajectoriesError(count, limit)
    if alg.mode == "symbolic" and (truncated or count > SYMBOLIC_BUDGET):
        # A cut sum is not J(theta) anyway, and a long exact one is much faster at the point:
        # compute it there (exactly in rationals where the point allows) and compare there.
        alg = Algebra(case, "at-point")
    result = _enumerate(case, alg, length)
    result.info.update({"trajectories": count, "length": length})
    result.algebra = alg
    if truncated:
        result.exact = False
        result.info["truncated_at"] = length
        alive = alg.at_point(result.info["alive"])[1]
        result.bound = _tail_bound(case, alg, length, alive)
    return result


def _truncation_length(case, limit):
    best, best_count = 0, 0
    for L in range(1, MAX_TRUNCATION + 1):
        c = count_trajectories(case, L)
        if c > limit:
            break
        best, best_count = L, c
    return best, best_count


def _enumerate(case, alg: Algebra, max_len: int | None) -> EngineResult:
    zero, one = alg.zero, alg.one
    n = len(alg.params)
    g, dg = alg.of(case.gamma), alg.d(case.gamma)
    J = zero
    fam = {f: [zero] * n for f in FAMILIES}
    # steps out of each state: (pi, dpi, P, dP, r, dr or None)
    steps = {}
    for s in case.nonterminal:
        out = []
        for a in case.actions[s]:
            pe = case.pi[s].get(a)
            if pe is None:
                continue
            for s2, Pe in case.P[s][a].items():
                re = case.r[s][a].get(s2)
                out.append((s2, alg.of(pe), alg.d(pe), alg.of(Pe), alg.d(Pe),
                            alg.of(re) if re is not None else zero, alg.d(re) if re is not None else None))
        steps[s] = out
    zeros = [zero] * n
    stack = []
    for s0, e in case.rho0.items():
        drho = alg.d(e)
        # (state, t, prod, dprod by family, R, dR_reward, dR_discount, gamma^t, d gamma^t)
        stack.append((s0, 0, alg.of(e), {"start": list(drho), "policy": zeros, "dynamics": zeros},
                      zero, zeros, zeros, one, zeros))
    count = 0
    alive = zero  # probability mass of the trajectories cut by max_len
    while stack:
        s, t, prod, dprod, R, dRr, dRg, gt, dgt = stack.pop()
        if s in case.terminal or (max_len is not None and t >= max_len):
            count += 1
            if s not in case.terminal:
                alive += prod
            J += prod * R
            for j in range(n):
                for f in ("start", "policy", "dynamics"):
                    x = dprod[f][j]
                    if x != zero and R != zero:
                        fam[f][j] += x * R
                if dRr[j] != zero:
                    fam["reward"][j] += prod * dRr[j]
                if dRg[j] != zero:
                    fam["discount"][j] += prod * dRg[j]
            continue
        for s2, p_a, dp_a, P, dP, r, dr in steps[s]:
            w = p_a * P
            nprod = prod * w
            nd = {}
            for f in ("start", "policy", "dynamics"):
                nd[f] = [x * w if x != zero else zero for x in dprod[f]]
            for j in range(n):
                if dp_a[j] != zero:
                    nd["policy"][j] = nd["policy"][j] + prod * dp_a[j] * P
                if dP[j] != zero:
                    nd["dynamics"][j] = nd["dynamics"][j] + prod * p_a * dP[j]
            nR = R + gt * r if r != zero else R
            ndRr = [dRr[j] + gt * dr[j] if dr is not None and dr[j] != zero else dRr[j] for j in range(n)]
            ndRg = [dRg[j] + dgt[j] * r if r != zero and dgt[j] != zero else dRg[j] for j in range(n)]
            ngt = gt * g
            ndgt = [dgt[j] * g + gt * dg[j] for j in range(n)]
            stack.append((s2, t + 1, nprod, nd, nR, ndRr, ndRg, ngt, ndgt))
    grad = [sum((fam[f][j] for f in FAMILIES), zero) for j in range(n)]
    return EngineResult("trajectory", J, grad, fam, info={"enumerated": count, "alive": alive})


def _tail_bound(case, alg: Algebra, L: int, alive_L) -> dict:
    r"""Rigorous bounds on |J - J_L| and |dJ/dtheta_j - dJ_L/dtheta_j| at the point.

    J_L is the objective cut after L steps.  Let a_L = Pr(alive at L), known exactly
    from the enumeration, and c_k = max_s Pr(still alive after k steps | s_0 = s)
    over the reachable non-terminal states (computed at the point).  By the Markov
    property Pr(alive at L+u) <= a_L c_k^floor(u/k) <= a_L rho^u / c_k with
    rho = c_k^(1/k).  Each remaining step t contributes at most
    gamma^t Pr(alive at t) [ |r|max (2t+3) s_j + |dr_j|max ] + t gamma^(t-1) |dgamma_j| |r|max
    Pr(alive at t), where s_j bounds |d log f / d theta_j| over the factors f of p(tau)
    (one start, t+1 policy and t+1 dynamics factors).  The geometric series are summed
    in closed form; the best k in 1..4m is used.  Floats rounded upwards (mpmath, 30 digits).
    """
    with mpmath.workdps(30):
        return _tail_bound_30(case, alg, L, alive_L)


def _tail_bound_30(case, alg: Algebra, L: int, alive_L) -> dict:
    point = case.point
    cache: dict = {}

    def num(e):  # each expression is evaluated at the point once
        if e not in cache:
            cache[e] = mpmath.mpf(str(sympy.N(e.xreplace(point) if e.free_symbols else e, 40)))
        return cache[e]

    params = alg.params
    n = len(params)
    gamma = num(case.gamma)
    dgamma = [abs(num(sympy.diff(case.gamma, p))) for p in params]
    rmax = mpmath.mpf(0)
    drmax = [mpmath.mpf(0)] * n
    smax = [mpmath.mpf(0)] * n
    factors = list(case.rho0.values())
    for s, a, s2, pe, Pe, re in case.steps():
        factors += [pe, Pe]
        rmax = max(rmax, abs(num(re)))
        for j, p in enumerate(params):
            if p in re.free_symbols:
                drmax[j] = max(drmax[j], abs(num(sympy.diff(re, p))))
    for f in factors:
        v = num(f)
        if v == 0:
            raise EngineError("cannot bound the truncated trajectory sum: a probability in p(tau) "
                              "is 0 at the point but not identically 0")
        for j, p in enumerate(params):
            if p in f.free_symbols:
                smax[j] = max(smax[j], abs(num(sympy.diff(f, p))) / v)
    reach = reachable_states(case)
    states = [s for s in case.nonterminal if s in reach]
    m = max(1, len(states))
    a_L = mpmath.mpf(str(alive_L)) * (1 + mpmath.mpf(10) ** -25)
    # alive_k(s) = Pr(alive after k steps | s): c_k = max_s alive_k(s)
    alive = {s: mpmath.mpf(1) for s in states}
    best = None
    for k in range(1, 4 * m + 1):
        new = {}
        for s in states:
            acc = mpmath.mpf(0)
            for a in case.actions[s]:
                pe = case.pi[s].get(a)
                if pe is None:
                    continue
                pa = num(pe)
                for s2, Pe in case.P[s][a].items():
                    if s2 in alive:
                        acc += pa * num(Pe) * alive[s2]
            new[s] = acc
        alive = new
        c = min(mpmath.mpf(1), max(alive.values(), default=mpmath.mpf(0)) * (1 + mpmath.mpf(10) ** -25))
        bound = _series_bound(L, a_L, c, k, gamma, rmax, smax, drmax, dgamma)
        if best is None or bound[0] < best[0]:
            best = bound
    up = 1 + mpmath.mpf(10) ** -20
    return {"J": _float_up(best[0] * up), "grad": [_float_up(b * up) for b in best[1]], "length": L}


def _float_up(x) -> float:
    """The smallest float64 >= x (a bound stays a bound: 1e-4928 is 5e-324, not 0.0)."""
    f = float(x)
    if f < x:
        f = math.nextafter(f, math.inf)
    return f


def _series_bound(L, a_L, c, k, gamma, rmax, smax, drmax, dgamma):
    """(bound on J's tail, [bounds on each gradient component's tail]) for one decay estimate."""
    inf = mpmath.inf
    if c == 0:
        return mpmath.mpf(0), [mpmath.mpf(0)] * len(smax)
    rho = gamma * c ** (mpmath.mpf(1) / k)
    if rho >= 1:
        return inf, [inf] * len(smax)
    lead = a_L * gamma**L / c  # times sum_u rho^u (...)
    s0 = 1 / (1 - rho)  # sum_u rho^u
    s1 = rho / (1 - rho) ** 2  # sum_u u rho^u
    boundJ = lead * rmax * s0
    grads = []
    for j in range(len(smax)):
        b = rmax * smax[j] * (2 * (L * s0 + s1) + 3 * s0) + drmax[j] * s0
        if dgamma[j] != 0:
            b += dgamma[j] * rmax * (L * s0 + s1) / gamma
        grads.append(lead * b)
    return boundJ, grads
