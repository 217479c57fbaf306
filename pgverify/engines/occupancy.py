r"""The occupancy engine: the policy gradient theorem in its state-occupancy form.

.. math::

    \nabla J = \sum_s \nabla\rho_0(s) V_0(s)
      + \sum_t \gamma^t \sum_s \Pr(s_t = s) \sum_a \Big[\nabla\pi(a|s)\, Q_t(s,a)
      + \pi(a|s) \sum_{s'} \big(\nabla P(s'|s,a)\,[r + \gamma V_{t+1}(s')]
      + P(s'|s,a)\,[\nabla r(s,a,s') + \nabla\gamma\, V_{t+1}(s')]\big)\Big]

(Sutton et al. 2000, Theorem 1; Sutton & Barto 2018, section 13.2), time-indexed
with a horizon.  Without one, the occupancy is the discounted visit measure
d(s) = sum_t gamma^t Pr(s_t = s), the solution of (I - gamma P_pi)^T d = rho0,
and Q, V are stationary.  The first policy term is the theorem proper; the
others are non-zero only when the start, the dynamics, the reward or the
discount depend on theta.

This engine computes occupancies forwards and Q backwards, then contracts them
with the local derivatives; it never differentiates a recursion.  Its ``info["weights"]``
holds, per time step, the weighted occupancy gamma^t Pr(s_t = s) and V_{t+1} (one
entry, d and V, without a horizon), for the deterministic policy gradient in
:mod:`pgverify.terms`.
"""
from __future__ import annotations

from ..algebra import Algebra
from ..graph import reachable_states
from .base import FAMILIES, EngineResult

__all__ = ["occupancy"]


def _q_table(alg, case, states, V_next, zero):
    """Q(s, a) = sum_s' P(s'|s,a) [r + gamma V_next(s')] for every reachable (s, a)."""
    g = alg.of(case.gamma)
    Q = {}
    for s in states:
        for a in case.actions[s]:
            if a not in case.pi[s]:
                continue
            total = zero
            for s2, Pe in case.P[s][a].items():
                re = case.r[s][a].get(s2)
                total += alg.of(Pe) * ((alg.of(re) if re is not None else zero) + g * V_next.get(s2, zero))
            Q[(s, a)] = total
    return Q


def _values(alg, case, states, Q, zero):
    return {s: sum((alg.of(case.pi[s][a]) * Q[(s, a)] for a in case.actions[s] if (s, a) in Q), zero)
            for s in states}


def _contract(alg, case, states, weight, Q, V_next, families, zero):
    """Add sum_s weight(s) sum_a [local derivative terms] into ``families``."""
    n = len(alg.params)
    g, dg = alg.of(case.gamma), alg.d(case.gamma)
    for s in states:
        w = weight.get(s, zero)
        if w == zero:
            continue
        for a in case.actions[s]:
            if (s, a) not in Q:
                continue
            pe = case.pi[s][a]
            p_a, dp_a = alg.of(pe), alg.d(pe)
            for j in range(n):
                if dp_a[j] != zero:
                    families["policy"][j] += w * dp_a[j] * Q[(s, a)]
            for s2, Pe in case.P[s][a].items():
                P, dP = alg.of(Pe), alg.d(Pe)
                re = case.r[s][a].get(s2)
                r = alg.of(re) if re is not None else zero
                dr = alg.d(re) if re is not None else None
                v2 = V_next.get(s2, zero)
                for j in range(n):
                    if dP[j] != zero:
                        families["dynamics"][j] += w * p_a * dP[j] * (r + g * v2)
                    if dr is not None and dr[j] != zero:
                        families["reward"][j] += w * p_a * P * dr[j]
                    if dg[j] != zero and v2 != zero:
                        families["discount"][j] += w * p_a * P * dg[j] * v2


def occupancy(case, alg: Algebra, **_options) -> EngineResult:
    """grad J by the policy gradient theorem (occupancy form); see the module docstring.

    References
    ----------
    Sutton, R. S., McAllester, D., Singh, S., & Mansour, Y. (2000). Policy gradient methods for
    reinforcement learning with function approximation. NIPS 12, Theorem 1.
    """
    zero = alg.zero
    n = len(alg.params)
    states = [s for s in case.states if s in reachable_states(case) and s not in case.terminal]
    families = {f: [zero] * n for f in FAMILIES}
    g = alg.of(case.gamma)
    rho = {s: alg.of(e) for s, e in case.rho0.items()}

    def step(mu):  # mu_{t+1}(s') = sum_s mu_t(s) sum_a pi P(s'|s,a), non-terminal s'
        out = {}
        for s, m in mu.items():
            if m == zero:
                continue
            for a in case.actions[s]:
                if a not in case.pi[s]:
                    continue
                pa = alg.of(case.pi[s][a])
                for s2, Pe in case.P[s][a].items():
                    if s2 not in case.terminal:
                        out[s2] = out.get(s2, zero) + m * pa * alg.of(Pe)
        return out

    if case.horizon is not None:
        H = case.horizon
        # Q_t and V_t backwards
        Vs = [None] * (H + 1)
        Qs = [None] * H
        Vs[H] = {}
        for t in range(H - 1, -1, -1):
            Qs[t] = _q_table(alg, case, states, Vs[t + 1], zero)
            Vs[t] = _values(alg, case, states, Qs[t], zero)
        # occupancies forwards, weighted by gamma^t
        mu = {s: x for s, x in rho.items() if s not in case.terminal}
        gt = alg.one
        weights = []
        for t in range(H):
            weight = {s: gt * m for s, m in mu.items()}
            weights.append((weight, Vs[t + 1]))
            _contract(alg, case, states, weight, Qs[t], Vs[t + 1], families, zero)
            mu = step(mu)
            gt = gt * g
        V0 = Vs[0]
        info = {"form": "time-indexed", "horizon": H, "weights": weights}
    else:
        idx = {s: i for i, s in enumerate(states)}
        m = len(states)
        if m:
            # (I - gamma P_pi)^T d = rho0 and (I - gamma P_pi) V = r_pi
            M = [[zero] * m for _ in range(m)]
            for s in states:
                M[idx[s]][idx[s]] = alg.one
                for s2, x in step({s: alg.one}).items():
                    M[idx[s]][idx[s2]] -= g * x
            MT = [[M[j][i] for j in range(m)] for i in range(m)]
            d_sol = alg.solve(MT, [[rho.get(s, zero)] for s in states])
            d = {s: d_sol[idx[s]][0] for s in states}
            Q0 = _q_table(alg, case, states, {}, zero)
            r_pi = _values(alg, case, states, Q0, zero)
            v_sol = alg.solve(M, [[r_pi[s]] for s in states])
            V0 = {s: v_sol[idx[s]][0] for s in states}
            Q = _q_table(alg, case, states, V0, zero)
            _contract(alg, case, states, d, Q, V0, families, zero)
        else:
            V0, d = {}, {}
        info = {"form": "discounted occupancy", "weights": [(d, V0)]}
    J = zero
    for s, e in case.rho0.items():
        v = V0.get(s, zero)
        J += rho[s] * v
        drho = alg.d(e)
        for j in range(n):
            if drho[j] != zero and v != zero:
                families["start"][j] += drho[j] * v
    grad = [sum((families[f][j] for f in FAMILIES), zero) for j in range(n)]
    return EngineResult("occupancy", J, grad, families, info=info)
