"""Exact moments of the estimators: by enumerating every trajectory where that is finite,
else by the linear recursions of :mod:`pgverify.montecarlo.recursive`.

The estimators of :mod:`pgverify.montecarlo.estimators` are run on the enumerated
trajectories with exact object arrays (Fractions where the point is rational, 60-digit
mpmath numbers otherwise), weighted by p(tau): E[g] = sum p(tau) g(tau) and
Var[g] = sum p(tau) g(tau)^2 - E[g]^2, exactly.  Group estimators are not functions of one
trajectory: their exact mean follows from independence (the own-return group mean is
biased by the factor (G - 1)/G on the score part; leave-one-out is unbiased), and their
variance from one episode's moments and independence (:func:`pgverify.montecarlo.recursive._group_moments`).
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

from .estimators import ESTIMATORS, estimate, extra_terms_needed
from .certified import certified_moments
from .recursive import at_boundary, recursive_moments
from .sampler import Episodes

__all__ = ["Moments", "enumerate_episodes", "exact_moments", "state_values", "ENUMERATION_LIMIT"]

ENUMERATION_LIMIT = 20_000


@dataclass
class Moments:
    mean: list  # per parameter, exact (Fraction / mpf), float64 (see the bounds), or None
    variance: list | None  # per parameter, or None when only sampled
    how: str  # "enumeration", "independence", "linear algebra", "float64 ...", "sampled only"
    #: certified absolute error bounds of float64 values (None: the values are exact)
    mean_error: list | None = None
    variance_error: list | None = None


def state_values(mdp):
    """V_t(s) (array (H, S)) with a horizon, else V(s) (array (S,)), in the arrays' own number type."""
    S = len(mdp.states)
    zero = mdp.pi.flat[0] * 0
    dtype = mdp.pi.dtype

    def backup(Vn):
        out = np.empty(S, dtype=dtype)
        for s in range(S):
            if mdp.terminal[s]:
                out[s] = zero
                continue
            acc = zero
            for a in range(mdp.pi.shape[1]):
                if mdp.pi[s, a] == 0:
                    continue
                q = zero
                for s2 in range(S):
                    if mdp.P[s, a, s2] != 0:
                        q += mdp.P[s, a, s2] * (mdp.r[s, a, s2] + mdp.gamma * Vn[s2])
                acc += mdp.pi[s, a] * q
            out[s] = acc
        return out

    if mdp.horizon is not None:
        V = [np.array([zero] * S, dtype=dtype)]
        for _ in range(mdp.horizon):
            V.append(backup(V[-1]))
        return np.array(V[::-1][:-1], dtype=dtype)  # V_0 .. V_{H-1}
    # (I - gamma P_pi) V = r_pi by Gauss-Jordan elimination in the arrays' number type
    A = [[zero] * S for _ in range(S)]
    b = [zero] * S
    for s in range(S):
        A[s][s] = zero + 1
        if mdp.terminal[s]:
            continue
        for a in range(mdp.pi.shape[1]):
            for s2 in range(S):
                w = mdp.pi[s, a] * mdp.P[s, a, s2]
                if w != 0:
                    b[s] += w * mdp.r[s, a, s2]
                    if not mdp.terminal[s2]:
                        A[s][s2] -= mdp.gamma * w
    for c in range(S):
        piv = next(i for i in range(c, S) if A[i][c] != 0)
        A[c], A[piv], b[c], b[piv] = A[piv], A[c], b[piv], b[c]
        inv = 1 / A[c][c]
        A[c] = [x * inv for x in A[c]]
        b[c] = b[c] * inv
        for i in range(S):
            if i != c and A[i][c] != 0:
                f = A[i][c]
                A[i] = [x - f * y for x, y in zip(A[i], A[c])]
                b[i] = b[i] - f * b[c]
    return np.array(b, dtype=dtype)


def enumerate_episodes(mdp, limit: int = ENUMERATION_LIMIT):
    """Every trajectory (horizon, or an acyclic support), as Episodes plus weights p(tau); None if too many."""
    S = len(mdp.states)
    rows = []
    stack = [(s, [], mdp.rho0[s]) for s in range(S) if mdp.rho0[s] != 0]
    cap = mdp.horizon if mdp.horizon is not None else S + 1  # without a horizon a path longer than S cycles
    while stack:
        s, steps, p = stack.pop()
        if mdp.terminal[s] or (mdp.horizon is not None and len(steps) >= mdp.horizon):
            rows.append((steps, p, s))
            if len(rows) > limit:
                return None
            continue
        if len(steps) >= cap:
            return None  # a cycle: infinitely many trajectories
        for a in range(mdp.pi.shape[1]):
            if mdp.pi[s, a] == 0:
                continue
            for s2 in range(S):
                if mdp.P[s, a, s2] != 0:
                    stack.append((s2, steps + [(s, a, s2)], p * mdp.pi[s, a] * mdp.P[s, a, s2]))
    # the ragged layout of Episodes: every step of every trajectory in one flat list, trajectory by trajectory
    flat = [step for steps, _, _ in rows for step in steps]
    states, actions, nexts = np.array(flat, dtype=np.int64).reshape(len(flat), 3).T.copy()
    rewards = np.empty(len(flat), dtype=object)
    for i, (s, a, s2) in enumerate(flat):
        rewards[i] = mdp.r[s, a, s2]
    lengths = np.array([len(steps) for steps, _, _ in rows], dtype=np.int64)
    starts = np.array([steps[0][0] if steps else last for steps, _, last in rows], dtype=np.int64)
    weights = np.array([p for _, p, _ in rows], dtype=object)
    L = int(lengths.max(initial=0))
    return Episodes(starts, lengths, states, actions, nexts, rewards, 0, None, L), weights


def exact_moments(mdp_exact, names=ESTIMATORS, *, group: int = 8) -> dict:
    """name -> Moments, by enumeration where finite (see the module docstring).

    The constant baseline is b = J and the value baseline V (V_t with a horizon), both
    computed here in the arrays' own exact number type.
    """
    out = {}
    with mpmath.workdps(60):
        got = enumerate_episodes(mdp_exact)
        V = state_values(mdp_exact)
        V0 = V[0] if mdp_exact.horizon is not None else V
        J = sum((mdp_exact.rho0[s] * V0[s] for s in range(len(V0))), mdp_exact.pi.flat[0] * 0)
        if got is None:  # cycles or too many trajectories: the recursions of pgverify.montecarlo.recursive
            rec = recursive_moments(mdp_exact, names, J=J, V=V, group=group)
            if rec is None:  # too large for exact arithmetic: float64 with certified error bounds
                rec = certified_moments(mdp_exact, names, J=J, V=V, group=group)
            if rec is None:
                return {name: Moments(None, None, "sampled only (too large for exact moments)") for name in names}
            return {name: Moments(*rec[name]) if name in rec else Moments(None, None, "sampled only")
                    for name in names}
        ep, w = got
        for name in names:
            if name.startswith("group"):
                continue
            g = estimate(name, mdp_exact, ep, J=J, V=V)
            mean = (w[:, None] * g).sum(0)
            second = (w[:, None] * g * g).sum(0)
            out[name] = Moments(list(mean), list(second - mean * mean), "enumeration")
        if any(n.startswith("group") for n in names):
            base = estimate("reinforce", mdp_exact, ep)
            mean_all = (w[:, None] * base).sum(0)
            extras = mean_all - (w[:, None] * _score_part(mdp_exact, ep)).sum(0)
            score_mean = mean_all - extras
            grouped = [n for n in names if n.startswith("group")]
            rec = recursive_moments(mdp_exact, grouped, J=J, V=V, group=group) or {}
            for name in grouped:
                # pairs of episodes: from one episode's moments (recursive) and independence; the
                # mean is E[A'] - c E[S] E[H] (G - 1) in general (E[S] = 0 except at a point where an
                # action of probability 0 carries gradient)
                if name in rec and rec[name][0] is not None:
                    out[name] = Moments(rec[name][0], rec[name][1], "independence")
                elif at_boundary(mdp_exact):  # the interior-point formula below does not hold
                    out[name] = Moments(None, None, "unknown: a boundary point, and the recursion is over budget")
                elif name == "group_mean":  # the recursion is over budget: the interior-point formula
                    out[name] = Moments(list(score_mean * (group - 1) / group + extras), None,
                                        "independence (assuming E[sum of scores] = 0)")
                elif name == "group_mean_loo":
                    out[name] = Moments(list(mean_all), None, "independence (assuming E[sum of scores] = 0)")
    return out


def _score_part(mdp, ep):
    """G sum_t score_t alone (reinforce without the extra terms)."""
    if not extra_terms_needed(mdp):
        return estimate("reinforce", mdp, ep)
    from .estimators import _pieces, _scores

    p = _pieces(mdp, ep)
    return p.G[:, None] * _scores(mdp, ep, p)


def gamma_dropped_mean(case):
    r"""Exact mean of ``no_discount_weighting`` by linear algebra, at the point (no horizon).

    E[sum_t score_t gamma^-t G_t] = sum_s eta(s) sum_a grad pi(a|s) Q(s, a), with the
    *undiscounted* visits eta = rho0^T (I - P_pi)^-1 and the discounted Q (Nota & Thomas 2020):
    the estimator weights states by visits, not by the discounted occupancy.  Returns the
    policy part per parameter (exact where the point is rational), or None when the visits
    are infinite (a continuing task) or there is a horizon (enumeration handles those).
    """
    from ..algebra import Algebra
    from ..engines.occupancy import _q_table, occupancy

    from ..graph import improper_states

    if case.horizon is not None:
        return None
    if improper_states(case):
        # some reachable state never reaches a terminal one (a continuing task): the undiscounted
        # visits are infinite and I - P_pi is singular.  Decided on the support graph, exactly: in
        # 60-digit reals the singular solve returned -4.8e+60 instead of failing
        return None
    alg = Algebra(case, "at-point")
    zero = alg.zero
    occ = occupancy(case, alg)
    d, V = occ.info["weights"][0]
    states = list(d)
    if not states:
        return [zero] * len(alg.params)
    idx = {s: i for i, s in enumerate(states)}
    m = len(states)
    M = [[zero] * m for _ in range(m)]
    for s in states:
        M[idx[s]][idx[s]] = alg.one
        for a in case.actions[s]:
            if a not in case.pi[s]:
                continue
            pa = alg.of(case.pi[s][a])
            for s2, Pe in case.P[s][a].items():
                if s2 in idx:
                    M[idx[s]][idx[s2]] -= pa * alg.of(Pe)
    MT = [[M[j][i] for j in range(m)] for i in range(m)]
    try:
        eta = alg.solve(MT, [[alg.of(case.rho0[s]) if s in case.rho0 else zero] for s in states])
    except ZeroDivisionError:
        return None
    Q = _q_table(alg, case, states, V, zero)
    out = [zero] * len(alg.params)
    for s in states:
        for a in case.actions[s]:
            if (s, a) not in Q:
                continue
            dpi = alg.d(case.pi[s][a])
            for j in range(len(out)):
                if dpi[j] != zero:
                    out[j] += eta[idx[s]][0] * dpi[j] * Q[(s, a)]
    return [alg.at_point(x)[0] if alg.mode == "exact-at-point" else alg.at_point(x)[1] for x in out]
