r"""The Bellman engine: J from the Bellman recursion, grad J by differentiating the recursion.

With a horizon H, backward induction (V_H = 0):

.. math::

    V_t(s) = \sum_a \pi(a|s) \sum_{s'} P(s'|s,a) [r(s,a,s') + \gamma V_{t+1}(s')],
    \qquad J = \sum_s \rho_0(s) V_0(s).

Without one, the linear system (I - \gamma P_\pi) V = r_\pi on the states reachable
from the start (Sutton & Barto 2018, eq. 3.14; solved exactly by sparse elimination in the
algebra's field, :meth:`pgverify.algebra.Algebra.solve`).

Differentiating the recursion term by term gives, for each parameter,

.. math::

    dV_t(s) = \underbrace{\sum_a d\pi\, Q_t(s,a)}_{\text{policy}}
      + \underbrace{\sum_a \pi \sum_{s'} dP\,[r + \gamma V_{t+1}(s')]}_{\text{dynamics}}
      + \underbrace{\sum_a \pi \sum_{s'} P\, dr}_{\text{reward}}
      + \underbrace{d\gamma \sum_a \pi \sum_{s'} P\, V_{t+1}(s')}_{\text{discount}}
      + \gamma \sum_a \pi \sum_{s'} P\, dV_{t+1}(s'),

and dJ = sum_s d rho0(s) V_0(s) (start) + sum_s rho0(s) dV_0(s).  The recursion is
linear in the local terms, so each family is carried through it on its own and
the families add up to the gradient.
"""
from __future__ import annotations

from ..algebra import Algebra
from ..graph import reachable_states
from .base import FAMILIES, EngineResult

__all__ = ["bellman"]


def _local_terms(alg: Algebra, case, s, V_next, zero, need_value=True):
    """The value r_pi(s) + gamma (P_pi V_next)(s), and the local derivative terms of each family.

    ``V_next`` maps states to values (terminal states and missing ones count 0).
    Returns (value, {family: [per parameter]}); the value is only computed when
    ``need_value`` (sums of large rational functions are what costs here).
    """
    n = len(alg.params)
    g, dg = alg.of(case.gamma), alg.d(case.gamma)
    discount_moves = any(x != zero for x in dg)
    value = zero
    fam = {f: [zero] * n for f in FAMILIES if f != "start"}
    for a in case.actions[s]:
        pe = case.pi[s].get(a)
        if pe is None:
            continue
        p_a, dp_a = alg.of(pe), alg.d(pe)
        policy_moves = any(x != zero for x in dp_a)
        q = zero  # Q(s, a) = sum_s' P (r + gamma V')
        ev = zero  # sum_s' P V'
        dyn = [zero] * n
        rew = [zero] * n
        for s2, Pe in case.P[s][a].items():
            P, dP = alg.of(Pe), alg.d(Pe)
            re = case.r[s][a].get(s2)
            r = alg.of(re) if re is not None else zero
            v2 = V_next.get(s2, zero)
            target = r + g * v2 if v2 != zero else r
            if need_value or policy_moves:
                q += P * target
            if discount_moves and v2 != zero:
                ev += P * v2
            for j in range(n):
                if dP[j] != zero:
                    dyn[j] += dP[j] * target
                if re is not None:
                    dr = alg.d(re)[j]
                    if dr != zero:
                        rew[j] += P * dr
        if need_value:
            value += p_a * q
        for j in range(n):
            if dp_a[j] != zero:
                fam["policy"][j] += dp_a[j] * q
            if dyn[j] != zero:
                fam["dynamics"][j] += p_a * dyn[j]
            if rew[j] != zero:
                fam["reward"][j] += p_a * rew[j]
            if dg[j] != zero:
                fam["discount"][j] += dg[j] * p_a * ev
    return value, fam


def _transition_weights(alg, case, s, zero):
    """gamma * P_pi(s' | s) for each s' (the coefficients of V(s') in the recursion)."""
    g = alg.of(case.gamma)
    out = {}
    for a in case.actions[s]:
        pe = case.pi[s].get(a)
        if pe is None:
            continue
        p_a = alg.of(pe)
        for s2, Pe in case.P[s][a].items():
            if s2 in case.terminal:
                continue
            out[s2] = out.get(s2, zero) + g * p_a * alg.of(Pe)
    return out


def bellman(case, alg: Algebra, **_options) -> EngineResult:
    """J and grad J by the Bellman recursion and its derivative (see the module docstring).

    References
    ----------
    Sutton, R. S., & Barto, A. G. (2018). Reinforcement Learning: An Introduction (2nd ed.),
    sections 3.5 and 13.2.
    """
    zero = alg.zero
    n = len(alg.params)
    states = [s for s in case.states if s in reachable_states(case) and s not in case.terminal]
    if case.horizon is not None:
        V = {}
        dV = {f: [{} for _ in range(n)] for f in FAMILIES if f != "start"}
        weights = {s: _transition_weights(alg, case, s, zero) for s in states}
        for _t in range(case.horizon):
            newV, newdV = {}, {f: [{} for _ in range(n)] for f in dV}
            for s in states:
                val, fam = _local_terms(alg, case, s, V, zero)
                newV[s] = val
                w = weights[s]
                for f in dV:
                    for j in range(n):
                        acc = fam[f][j]
                        for s2, c in w.items():
                            x = dV[f][j].get(s2)
                            if x is not None and x != zero:
                                acc += c * x
                        if acc != zero:
                            newdV[f][j][s] = acc
            V, dV = newV, newdV
        dV0 = dV
    else:
        idx = {s: i for i, s in enumerate(states)}
        m = len(states)
        if m == 0:
            V, dV0 = {}, {f: [{} for _ in range(n)] for f in FAMILIES if f != "start"}
        else:
            A = [[zero] * m for _ in range(m)]
            for s in states:
                i = idx[s]
                A[i][i] = alg.one
                for s2, c in _transition_weights(alg, case, s, zero).items():
                    A[i][idx[s2]] -= c
            # r_pi: the local value with V_next = 0
            b = [[_local_terms(alg, case, s, {}, zero)[0]] for s in states]
            sol = alg.solve(A, b)
            V = {s: sol[idx[s]][0] for s in states}
            # right-hand sides: one column per (family, parameter) that is not identically zero
            fams = {s: _local_terms(alg, case, s, V, zero, need_value=False)[1] for s in states}
            cols = []
            for f in FAMILIES:
                if f == "start":
                    continue
                for j in range(n):
                    col = [fams[s][f][j] for s in states]
                    if any(x != zero for x in col):
                        cols.append((f, j, col))
            dV0 = {f: [{} for _ in range(n)] for f in FAMILIES if f != "start"}
            if cols:
                B = [[c[2][i] for c in cols] for i in range(m)]
                X = alg.solve(A, B)
                for k, (f, j, _col) in enumerate(cols):
                    dV0[f][j] = {s: X[idx[s]][k] for s in states}
    # J and its families
    J = zero
    families = {f: [zero] * n for f in FAMILIES}
    for s, e in case.rho0.items():
        rho, drho = alg.of(e), alg.d(e)
        v = V.get(s, zero)
        J += rho * v
        for j in range(n):
            if drho[j] != zero:
                families["start"][j] += drho[j] * v
            for f in dV0:
                x = dV0[f][j].get(s)
                if x is not None and x != zero:
                    families[f][j] += rho * x
    grad = [sum((families[f][j] for f in FAMILIES), zero) for j in range(n)]
    return EngineResult("bellman", J, grad, families, info={"states": len(states)})
