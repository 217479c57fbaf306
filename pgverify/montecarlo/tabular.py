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


def _num(e, point) -> float:
    v = e.xreplace(point) if e.free_symbols else e
    return float(sympy.N(v, 30))


def tabulate(case: Case) -> TabularMDP:
    """The case at its point as arrays (see :class:`TabularMDP`)."""
    S = len(case.states)
    idx = {s: i for i, s in enumerate(case.states)}
    acts = [list(case.actions.get(s, ())) for s in case.states]
    A = max((len(a) for a in acts), default=1) or 1
    n = len(case.parameters)
    pt = case.point
    terminal = np.array([s in case.terminal for s in case.states])
    rho0 = np.zeros(S)
    dlog_rho0 = np.zeros((S, n))
    pi = np.zeros((S, A))
    dlog_pi = np.zeros((S, A, n))
    P = np.zeros((S, A, S))
    dlog_P = np.zeros((S, A, S, n))
    r = np.zeros((S, A, S))
    dr = np.zeros((S, A, S, n))

    def dlog(e, p):
        if p not in e.free_symbols:
            return 0.0
        v = _num(e, pt)
        return _num(sympy.diff(e, p), pt) / v if v != 0 else 0.0

    for s, e in case.rho0.items():
        rho0[idx[s]] = _num(e, pt)
        dlog_rho0[idx[s]] = [dlog(e, p) for p in case.parameters]
    for s in case.nonterminal:
        i = idx[s]
        for k, a in enumerate(case.actions[s]):
            pe = case.pi[s].get(a)
            if pe is not None:
                pi[i, k] = _num(pe, pt)
                dlog_pi[i, k] = [dlog(pe, p) for p in case.parameters]
            for s2, Pe in case.P[s][a].items():
                j = idx[s2]
                P[i, k, j] = _num(Pe, pt)
                dlog_P[i, k, j] = [dlog(Pe, p) for p in case.parameters]
                re = case.r[s][a].get(s2)
                if re is not None:
                    r[i, k, j] = _num(re, pt)
                    dr[i, k, j] = [_num(sympy.diff(re, p), pt) if p in re.free_symbols else 0.0
                                   for p in case.parameters]
    dgamma = np.array([_num(sympy.diff(case.gamma, p), pt) if p in case.gamma.free_symbols else 0.0
                       for p in case.parameters])
    return TabularMDP(list(case.states), acts, terminal, rho0, pi, P, r, _num(case.gamma, pt), case.horizon,
                      list(case.parameter_names), dlog_rho0, dlog_pi, dlog_P, dr, dgamma)
