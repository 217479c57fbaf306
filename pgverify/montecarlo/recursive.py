r"""Exact means and variances of the estimators by linear algebra, without enumerating trajectories.

Every single-episode estimator is a sum of *suffix functionals* of the episode, and each
functional X_i of the episode from state s obeys an affine recursion over one step
(s, a, s') followed by the rest of the episode from s' (whose functionals are X'):

    X_i = c_i(s, a, s') + sum_k M_ik(s, a, s') X'_k,        X' = 0 after the end,

with M lower-triangular and a constant diagonal M_ii = lambda_i (gamma or 1).  Writing
r, x = grad log pi(a|s), p = grad log P(s'|s,a), q = grad r and v = V(s):

==========  =====================================  ===================================
functional  definition (k counts steps from s)     one step
==========  =====================================  ===================================
``H``       sum_k gamma^k r_k (the return)          r + gamma H'
``S``       sum_k x_k (the summed score)            x + S'
``HS``      H * S                                   r x + r S' + gamma x H' + gamma HS'
``RTG``     sum_k gamma^k x_k H_k                   x r + gamma x H' + gamma RTG'
``ND``      sum_k x_k H_k (gamma^t dropped)         x r + gamma x H' + ND'
``CB``      sum_k gamma^k x_k (H_k - J)             x (r - J) + gamma x H' + gamma CB'
``VB``      sum_k gamma^k x_k (H_k - V(s_k))        x (r - v) + gamma x H' + gamma VB'
``DYN``     sum_k gamma^k p_k H_k                   p r + gamma p H' + gamma DYN'
``PATH``    sum_k gamma^k q_k                       q + gamma PATH'
``T``       sum_k k gamma^(k-1) r_k                 H' + gamma T'
==========  =====================================  ===================================

At the start state the estimators are: reinforce = HS, reward_to_go = RTG,
constant_baseline = CB, value_baseline = VB, no_discount_weighting = ND, each plus, where
the case needs them, H grad log rho0(s_0) + DYN + PATH + grad gamma T (see
:mod:`pgverify.montecarlo.estimators`).  Taking expectations of the recursion gives, for
the first moments m_i(s) = E[X_i | s_0 = s] and the second moments m_ij(s) = E[X_i X_j | s],

    m_i(s)  = sum_{a,s'} pi P [c_i + sum_k M_ik m_k(s')]
    m_ij(s) = sum_{a,s'} pi P [c_i c_j + c_i (M m(s'))_j + c_j (M m(s'))_i + sum_kl M_ik M_jl m_kl(s')],

each a linear system (I - lambda_i lambda_j P_pi) y = b over the non-terminal states once
the lower functionals are known (with a horizon: backward induction over t instead).  So
the moments of every estimator are exact, per parameter, on cyclic cases too.  A system
with lambda = 1 is singular when a reachable part of the chain never terminates: the
estimators that sum undiscounted terms (reinforce's S, no_discount_weighting) are then
sums of infinitely many terms and have no finite moments, which is reported.

Arithmetic: python-flint's exact rationals (``fmpq``, ``fmpq_mat``) where the point is
rational, 60-digit mpmath numbers otherwise; results are returned as Fractions or mpf.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from .estimators import extra_terms_needed

__all__ = ["recursive_moments", "COMPONENTS"]

#: functional -> the functionals its one-step recursion uses (besides itself)
COMPONENTS = {
    "H": (), "S": (), "HS": ("H", "S"), "RTG": ("H",), "ND": ("H",), "CB": ("H",), "VB": ("H",),
    "DYN": ("H",), "PATH": (), "T": ("H",),
}
_MAIN = {"reinforce": "HS", "reward_to_go": "RTG", "constant_baseline": "CB", "value_baseline": "VB",
         "no_discount_weighting": "ND"}
#: work budget (state-steps x parameters x functional pairs x time steps) above which we give up
WORK_LIMIT = 2_000_000  # about 2-3 s of exact arithmetic on this project's 2-core test machine


class _Field:
    """The number type: fmpq (rational point) or 60-digit mpf, with solves in it."""

    def __init__(self, mdp):
        import flint

        self.flint = flint
        arrays = (mdp.rho0, mdp.pi, mdp.P, mdp.r, mdp.dlog_rho0, mdp.dlog_pi, mdp.dlog_P, mdp.dr, mdp.dgamma)
        self.rational = all(isinstance(x, Fraction) for arr in arrays for x in arr.flat) and isinstance(
            mdp.gamma, Fraction)

    def of(self, x):
        if self.rational:
            return self.flint.fmpq(x.numerator, x.denominator)
        return x if isinstance(x, mpmath.mpf) else mpmath.mpf(x.numerator) / x.denominator

    def back(self, x):
        if self.rational:
            return Fraction(int(x.p), int(x.q))
        return x

    def inverse(self, A):
        """The inverse of a square list-of-lists matrix, or None when it is singular."""
        m = len(A)
        if m == 0:
            return []
        if self.rational:
            M = self.flint.fmpq_mat(m, m, [x for row in A for x in row])
            if M.det() == 0:
                return None
            Minv = M.inv()
            return [[Minv[i, j] for j in range(m)] for i in range(m)]
        M = mpmath.matrix(A)
        if abs(mpmath.det(M)) < mpmath.mpf(10) ** (-40):
            return None
        Minv = M ** -1
        return [[Minv[i, j] for j in range(m)] for i in range(m)]


def _reachable(mdp):
    S = len(mdp.states)
    seen = {s for s in range(S) if mdp.rho0[s] != 0}
    stack = list(seen)
    while stack:
        s = stack.pop()
        if mdp.terminal[s]:
            continue
        for a in range(mdp.pi.shape[1]):
            if mdp.pi[s, a] == 0:
                continue
            for s2 in range(S):
                if mdp.P[s, a, s2] != 0 and s2 not in seen:
                    seen.add(s2)
                    stack.append(s2)
    return sorted(seen)


def at_boundary(mdp) -> bool:
    """Whether the point is a boundary point: a probability of the start, the policy or the
    dynamics is 0 at a reachable state but its derivative is not (``mdp.boundary``, found by
    :func:`~pgverify.montecarlo.tabular.tabulate`).  The score terms never sample that outcome,
    so the estimators miss its share of the gradient: "unbiased" no longer follows from theory."""
    if not mdp.boundary:
        return False
    if -1 in mdp.boundary:
        return True
    return any(s in mdp.boundary for s in _reachable(mdp))


def recursive_moments(mdp, names, *, J, V, group: int = 8):
    """See :func:`_recursive_moments` (run at 60 digits where the numbers are mpmath's)."""
    with mpmath.workdps(60):
        return _recursive_moments(mdp, names, J=J, V=V, group=group)


def _recursive_moments(mdp, names, *, J, V, group: int = 8):
    """name -> (mean list, variance list, how) by the recursions of the module docstring.

    ``mdp`` holds exact arrays (``tabulate(case, exact=True)``), ``J`` and ``V`` the exact
    objective and state values (V_t with a horizon) in the same number type.  Returns None
    when the work would exceed :data:`WORK_LIMIT`.  An estimator whose moments are infinite
    gets ``(None, None, reason)``.  The group estimators' moments follow from one episode's
    by independence (:func:`_group_moments`).
    """
    n = len(mdp.parameters)
    S = len(mdp.states)
    extras = extra_terms_needed(mdp)
    extra_set = {"H", "DYN", "PATH", "T"} if extras else set()
    combos = [{_MAIN[name]} | extra_set for name in names if name in _MAIN]
    if any(name.startswith("group") for name in names):
        combos.append({"HS", "S", "H"} | extra_set)
    comps = _closure(set().union(*combos)) if combos else set()
    order = [c for c in COMPONENTS if c in comps]
    pairs = needed_pairs(combos)
    states = _reachable(mdp)
    live = [s for s in states if not mdp.terminal[s]]
    steps = [(s, a, s2, mdp.pi[s, a] * mdp.P[s, a, s2]) for s in live for a in range(mdp.pi.shape[1])
             if mdp.pi[s, a] != 0 for s2 in range(S) if mdp.P[s, a, s2] != 0]
    T_len = mdp.horizon if mdp.horizon is not None else 1
    if len(steps) * max(n, 1) * (len(order) + len(pairs)) * T_len > WORK_LIMIT:
        return None
    F = _Field(mdp)
    g = F.of(mdp.gamma)
    one, zero = F.of(Fraction(1)), F.of(Fraction(0))
    vec = np.vectorize(F.of, otypes=[object])
    x_all = vec(mdp.dlog_pi) if mdp.dlog_pi.size else mdp.dlog_pi
    p_all = vec(mdp.dlog_P) if mdp.dlog_P.size else mdp.dlog_P
    q_all = vec(mdp.dr) if mdp.dr.size else mdp.dr
    dg = vec(mdp.dgamma) if mdp.dgamma.size else mdp.dgamma
    Jf = F.of(J) if not isinstance(J, type(one)) else J
    lam = {"H": g, "S": one, "HS": g, "RTG": g, "ND": one, "CB": g, "VB": g, "DYN": g, "PATH": g, "T": g}

    def zeros():
        out = np.empty(n, dtype=object)
        out.fill(zero)
        return out

    def step_terms(s, a, s2, v):
        """c_i and the off-diagonal M_ik of one step, for the functionals in use (length-n arrays or scalars)."""
        r = F.of(mdp.r[s, a, s2])
        x = x_all[s, a]
        terms = {
            "H": lambda: (r, {}),
            "S": lambda: (x, {}),
            "HS": lambda: (r * x, {"S": r, "H": g * x}),
            "RTG": lambda: (x * r, {"H": g * x}),
            "ND": lambda: (x * r, {"H": g * x}),
            "CB": lambda: (x * (r - Jf), {"H": g * x}),
            "VB": lambda: (x * (r - v), {"H": g * x}),
            "DYN": lambda: (p_all[s, a, s2] * r, {"H": g * p_all[s, a, s2]}),
            "PATH": lambda: (q_all[s, a, s2], {}),
            "T": lambda: (zero, {"H": one}),
        }
        c, M = {}, {}
        for i in order:
            c[i], M[i] = terms[i]()
        return c, M

    def v_of(s, t):
        if V is None:
            return zero
        Vs = V[t][s] if mdp.horizon is not None else V[s]
        return F.of(Vs)

    def as_vec(x):
        if isinstance(x, np.ndarray):
            return x
        out = np.empty(n, dtype=object)
        out.fill(x)
        return out

    # per step: the recursion's pieces, built once; with a horizon only the value baseline's
    # c depends on t (through V_t), so only that entry is rebuilt for t > 0
    first = [(s, s2, w if isinstance(w, type(one)) else F.of(w), *step_terms(s, a, s2, v_of(s, 0)))
             for s, a, s2, w in steps]

    def pieces(t):
        if t == 0 or "VB" not in order:
            return first
        return [(s, s2, w, {**c, "VB": x_all[s, a] * (F.of(mdp.r[s, a, s2]) - v_of(s, t))}, M)
                for (s, a, s2, _), (_, _, w, c, M) in zip(steps, first)]

    def rhs_first(i, m1_next, pcs):
        """b_i(s) = sum w [c_i + sum_{k != i} M_ik m_k(s')] for every live state."""
        b = {s: zeros() for s in live}
        for s, s2, w, c, M in pcs:
            acc = as_vec(c[i])
            for k, coef in M[i].items():
                acc = acc + coef * m1_next[k].get(s2, 0)
            b[s] = b[s] + w * acc
        return b

    def rhs_second(i, j, m1_next, m2_next, pcs):
        b = {s: zeros() for s in live}
        for s, s2, w, c, M in pcs:
            ci, cj = as_vec(c[i]), as_vec(c[j])
            Mi = dict(M[i]); Mi[i] = lam[i]
            Mj = dict(M[j]); Mj[j] = lam[j]
            mi = sum((coef * m1_next[k].get(s2, 0) for k, coef in Mi.items()), zeros())
            mj = sum((coef * m1_next[k].get(s2, 0) for k, coef in Mj.items()), zeros())
            acc = ci * cj + ci * mj + cj * mi
            for k, ck in Mi.items():
                for l_, cl in Mj.items():
                    if (k, l_) == (i, j) or (l_, k) == (i, j):
                        continue  # the unknown itself: on the left-hand side
                    acc = acc + ck * cl * m2_next[_key(k, l_, order)].get(s2, 0)
            b[s] = b[s] + w * acc
        return b

    failed = set()
    if mdp.horizon is None:
        idx = {s: k for k, s in enumerate(live)}
        Ppi = [[zero] * len(live) for _ in live]
        for s, a, s2, w in steps:
            if s2 in idx:
                Ppi[idx[s]][idx[s2]] += F.of(w) if not isinstance(w, type(one)) else w
        inverses = {}

        def solve(lmb, b):
            key = str(lmb)
            if key not in inverses:
                A = [[(one if i == j else zero) - lmb * Ppi[i][j] for j in range(len(live))] for i in range(len(live))]
                inverses[key] = F.inverse(A)
            inv = inverses[key]
            if inv is None:
                return None
            B = [b[s] for s in live]
            return {s: sum((inv[idx[s]][k] * B[k] for k in range(len(live))), zeros()) for s in live}

        pcs = pieces(0)
        m1, m2 = {}, {}
        for i in order:  # m1 refers to itself (same step, s'): a fixed point, solved
            if any(k in failed for k in COMPONENTS[i]):
                failed.add(i)
                continue
            sol = solve(lam[i], rhs_first(i, m1, pcs))
            if sol is None:
                failed.add(i)
            else:
                m1[i] = sol
        for i, j in pairs:
            if i in failed or j in failed:
                continue
            sol = solve(lam[i] * lam[j], rhs_second(i, j, m1, m2, pcs))
            if sol is None:
                failed |= {i, j}
            else:
                m2[(i, j)] = sol
    else:
        m1_next = {i: {} for i in order}
        m2_next = {p: {} for p in pairs}
        for t in range(mdp.horizon - 1, -1, -1):
            pcs = pieces(t)
            m1 = {}
            for i in order:
                b = rhs_first(i, m1_next, pcs)
                # the diagonal term lambda_i m_i(s') uses the next step's values
                for s, s2, w, c, M in pcs:
                    b[s] = b[s] + w * lam[i] * m1_next[i].get(s2, zeros())
                m1[i] = b
            m2 = {}
            for i, j in pairs:
                b = rhs_second(i, j, m1_next, m2_next, pcs)
                for s, s2, w, c, M in pcs:
                    b[s] = b[s] + w * lam[i] * lam[j] * m2_next[(i, j)].get(s2, zeros())
                m2[(i, j)] = b
            m1_next, m2_next = m1, m2
        m1, m2 = m1_next, m2_next

    # at the start: E over rho0 of the estimator's combination of functionals
    rho = {s: F.of(mdp.rho0[s]) for s in states if mdp.rho0[s] != 0}
    drho = {s: vec(mdp.dlog_rho0[s]) if n else zeros() for s in rho}

    def start_mean(comb):
        """E[sum_i coef_i X_i] at s_0 ~ rho0 (coef: dict functional -> vector or scalar)."""
        tot = zeros()
        for s, w in rho.items():
            for i, coef in comb(s).items():
                tot = tot + w * coef * m1[i].get(s, zeros())
        return tot

    def start_second(comb, comb2=None):
        """E[(sum_i c_i X_i)(sum_j c'_j X_j)] at s_0 ~ rho0 (the square when comb2 is None)."""
        comb2 = comb2 or comb
        tot = zeros()
        for s, w in rho.items():
            co, co2 = comb(s), comb2(s)
            for i, ci in co.items():
                for j, cj in co2.items():
                    tot = tot + w * ci * cj * m2[_key(i, j, order)].get(s, zeros())
        return tot

    def combination(main):
        def comb(s):
            co = {main: one}
            if extras:
                for k, val in (("DYN", one), ("PATH", one), ("T", dg)):
                    co[k] = co.get(k, zeros()) + val
                co["H"] = co.get("H", zeros()) + drho[s]
            return co
        return comb

    out = {}
    back = np.vectorize(F.back, otypes=[object])
    how = "linear algebra" if mdp.horizon is None else "backward induction"
    for name in names:
        if name in _MAIN:
            comb = combination(_MAIN[name])
            used = set(comb(next(iter(rho))).keys()) if rho else {_MAIN[name]}
            if used & failed:
                out[name] = (None, None, "none: the estimator sums infinitely many terms "
                                         "(a reachable part of the chain never terminates)")
                continue
            mean = start_mean(comb)
            var = start_second(comb) - mean * mean
            out[name] = (list(back(mean)), list(back(var)), how)
    for name in names:
        if name.startswith("group"):
            out[name] = (None, None, "none: the estimator sums infinitely many terms "
                                     "(a reachable part of the chain never terminates)")
    grouped = [name for name in names if name.startswith("group")]
    if grouped and not (failed & _closure({"HS"} | ({"H", "DYN", "PATH", "T"} if extras else set()))):
        for name in grouped:
            mean, var = _group_moments(name, group, combination("HS"), start_mean, start_second, F, one)
            out[name] = (list(back(mean)), list(back(var)), f"{how} and independence")
    return out


def _group_moments(name, G, comb_A, start_mean, start_second, F, one):
    r"""Mean and variance of a group estimator from the moments of one episode.

    Episode i of a group of G has g_i = A'_i - c B_i sum_{j != i} H_j, where A = H S plus the
    extra terms (reinforce), B = S, H the return, and A' = A - H S / G, c = 1/G for the
    own-return mean (``group_mean``), A' = A, c = 1/(G - 1) for leave-one-out.  Episodes are
    independent, so with R a sum of G - 2 independent returns
    E[g_1 g_2] = E[A']^2 - 2c E[B] (E[A'H] + E[A'] E[R]) + c^2 (E[BH]^2 + 2 E[BH] E[B] E[R] + E[B]^2 E[R^2]).
    The variance returned is that of one episode's share of its group, G Var(mean of the group)
    = Var(g_1) + (G - 1) Cov(g_1, g_2), the quantity the sampled check estimates.
    """
    if name == "group_mean":
        def comb_Ap(s):
            co = dict(comb_A(s))
            co["HS"] = co["HS"] - one * F.of(Fraction(1, G))
            return co
        c = F.of(Fraction(1, G))
    else:
        comb_Ap, c = comb_A, F.of(Fraction(1, G - 1))

    def only(k):
        return lambda s: {k: one}

    EA, EA2 = start_mean(comb_Ap), start_second(comb_Ap)
    EAB, EAH = start_second(comb_Ap, only("S")), start_second(comb_Ap, only("H"))
    EB, EB2, EBH = start_mean(only("S")), start_second(only("S")), start_second(only("S"), only("H"))
    EH, EH2 = start_mean(only("H")), start_second(only("H"))
    m = G - 1  # returns in the baseline of one episode
    sum_m2 = EH2 * m + EH * EH * (m * (m - 1))
    mean = EA - c * EB * EH * m
    Eg2 = EA2 - 2 * c * EAB * EH * m + c * c * EB2 * sum_m2
    ER, ER2 = EH * (G - 2), EH2 * (G - 2) + EH * EH * ((G - 2) * (G - 3))
    Eg1g2 = EA * EA - 2 * c * EB * (EAH + EA * ER) + c * c * (EBH * EBH + 2 * EBH * EB * ER + EB * EB * ER2)
    var = (Eg2 - mean * mean) + (Eg1g2 - mean * mean) * (G - 1)
    return mean, var


def needed_pairs(combos) -> list:
    """The pairs (i, j) of functionals whose second moments E[X_i X_j] are needed.

    ``combos`` are the sets of functionals that the estimators combine at the start (all
    their pairs are needed); the recursion of a pair (i, j) needs the pairs (k, l) with k in
    i's recursion and l in j's.  Returned with i before j in :data:`COMPONENTS` order, sorted so
    that every pair comes after the pairs its recursion uses.
    """
    pos = {c: k for k, c in enumerate(COMPONENTS)}
    out = set()
    stack = [(i, j) for combo in combos for i in combo for j in combo]
    while stack:
        i, j = stack.pop()
        if pos[i] > pos[j]:
            i, j = j, i
        if (i, j) in out:
            continue
        out.add((i, j))
        stack.extend((k, l_) for k in (i, *COMPONENTS[i]) for l_ in (j, *COMPONENTS[j]))
    return sorted(out, key=lambda pr: (pos[pr[0]] + pos[pr[1]], pos[pr[0]]))


def _key(i, j, order):
    return (i, j) if order.index(i) <= order.index(j) else (j, i)


def _closure(wanted):
    out = set()
    stack = list(wanted)
    while stack:
        c = stack.pop()
        if c not in out:
            out.add(c)
            stack.extend(COMPONENTS[c])
    return out
