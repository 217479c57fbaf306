"""A case at the parameter point as numpy arrays (floats), for sampling.

Sampling is the one place where pgverify works in floats: the exact results are
computed elsewhere and the sampler only has to draw episodes from the right
distribution.  The arrays hold the probabilities at the point and, for the
estimators, the derivatives of log pi, log P, log rho0, r and gamma at the point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy

from ..model import Case
from ..printing import exact_float, exact_normal

__all__ = ["TabularMDP", "tabulate"]


@dataclass
class TabularMDP:
    """Arrays of a case at its point.  S states, A = most actions of a state, n parameters."""

    states: list
    actions: list  # per state: list of action names (padded positions have probability 0)
    terminal: np.ndarray  # (S,) bool
    rho0: np.ndarray  # (S,)
    pi: np.ndarray  # (S, A)
    P: np.ndarray  # (S, A, S)
    r: np.ndarray  # (S, A, S)
    gamma: float
    horizon: int | None
    parameters: list
    dlog_rho0: np.ndarray  # (S, n)
    dlog_pi: np.ndarray  # (S, A, n)
    dlog_P: np.ndarray  # (S, A, S, n)
    dr: np.ndarray  # (S, A, S, n)
    dgamma: np.ndarray  # (n,)
    #: where a probability is 0 at the point but its derivative is not (a boundary point): the
    #: states whose policy or dynamics have one, and -1 for the start distribution
    boundary: frozenset = frozenset()


def _num(e, point) -> float:
    v = e.xreplace(point) if e.free_symbols else e
    return float(exact_float(sympy.sympify(v), 30))


def _exact(e, point):
    """The value at the point as a Fraction when rational, else a 50-digit mpmath number."""
    from fractions import Fraction

    import mpmath

    v = e.xreplace(point) if e.free_symbols else e
    v = exact_normal(v)  # exact rewrites only: never a nearby closed form (nsimplify made sigmoid(75) 1)
    if v.is_Rational:
        return Fraction(int(v.p), int(v.q))
    with mpmath.workdps(50):
        return mpmath.mpf(str(exact_float(v, 55)))


def _is_mpf(x) -> bool:
    import mpmath

    return isinstance(x, mpmath.mpf)


def _to_mpf(x):
    """A Fraction (or mpf) as an mpmath number at the working precision."""
    import mpmath

    return x if isinstance(x, mpmath.mpf) else mpmath.mpf(x.numerator) / x.denominator


def tabulate(case: Case, exact: bool = False) -> TabularMDP:
    """The case at its point as arrays (see :class:`TabularMDP`).

    With ``exact`` the arrays have dtype object and hold Fractions where the values are
    rational (50-digit mpmath numbers otherwise), for exact moments by enumeration.
    """
    S = len(case.states)
    idx = {s: i for i, s in enumerate(case.states)}
    acts = [list(case.actions.get(s, ())) for s in case.states]
    A = max((len(a) for a in acts), default=1) or 1
    n = len(case.parameters)
    pt = case.point
    terminal = np.array([s in case.terminal for s in case.states])
    irrational = []  # set when an exact value is an mpmath number (then all become mpf)

    def num(e, point):
        if not exact:
            return _num(e, point)
        v = _exact(e, point)
        if not irrational and _is_mpf(v):
            irrational.append(True)
        return v

    def zeros(shape):
        if not exact:
            return np.zeros(shape)
        from fractions import Fraction

        out = np.empty(shape, dtype=object)
        out.fill(Fraction(0))
        return out

    rho0 = zeros(S)
    dlog_rho0 = zeros((S, n))
    pi = zeros((S, A))
    dlog_pi = zeros((S, A, n))
    P = zeros((S, A, S))
    dlog_P = zeros((S, A, S, n))
    r = zeros((S, A, S))
    dr = zeros((S, A, S, n))
    zero = zeros(1)[0]

    boundary = set()

    def dlog(e, p, where):
        if p not in e.free_symbols:
            return zero
        v = num(e, pt)
        d = num(sympy.diff(e, p), pt)
        if v == 0:  # log is undefined; a non-zero derivative makes this a boundary point
            if d != 0:
                boundary.add(where)
            return zero
        if exact and (_is_mpf(d) or _is_mpf(v)):  # Fractions do not divide by mpf numbers
            import mpmath

            with mpmath.workdps(60):
                return _to_mpf(d) / _to_mpf(v)
        return d / v

    for s, e in case.rho0.items():
        rho0[idx[s]] = num(e, pt)
        dlog_rho0[idx[s]] = [dlog(e, p, -1) for p in case.parameters]
    for s in case.nonterminal:
        i = idx[s]
        for k, a in enumerate(case.actions[s]):
            pe = case.pi[s].get(a)
            if pe is not None:
                pi[i, k] = num(pe, pt)
                dlog_pi[i, k] = [dlog(pe, p, i) for p in case.parameters]
            for s2, Pe in case.P[s][a].items():
                j = idx[s2]
                P[i, k, j] = num(Pe, pt)
                dlog_P[i, k, j] = [dlog(Pe, p, i) for p in case.parameters]
                re = case.r[s][a].get(s2)
                if re is not None:
                    r[i, k, j] = num(re, pt)
                    dr[i, k, j] = [num(sympy.diff(re, p), pt) if p in re.free_symbols else zero
                                   for p in case.parameters]
    dgamma = zeros(n)
    dgamma[:] = [num(sympy.diff(case.gamma, p), pt) if p in case.gamma.free_symbols else zero
                 for p in case.parameters]
    gamma = num(case.gamma, pt)
    arrays = [rho0, pi, P, r, dlog_rho0, dlog_pi, dlog_P, dr, dgamma]
    if exact:
        import mpmath

        if irrational:
            # one number type throughout: 60-digit mpmath numbers (Fractions do not mix with mpf)
            with mpmath.workdps(60):
                arrays = [np.vectorize(_to_mpf, otypes=[object])(arr) if arr.size else arr for arr in arrays]
                gamma = _to_mpf(gamma)
    rho0, pi, P, r, dlog_rho0, dlog_pi, dlog_P, dr, dgamma = arrays
    return TabularMDP(list(case.states), acts, terminal, rho0, pi, P, r, gamma, case.horizon,
                      list(case.parameter_names), dlog_rho0, dlog_pi, dlog_P, dr, dgamma, frozenset(boundary))
