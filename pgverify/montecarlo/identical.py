r"""Estimators that are the same function of the episode on a case, so that each is tested once.

Two estimators whose per-episode estimates are identical on every episode the case can produce
give identical samples: testing both counts one test twice in Holm's procedure (a stricter
threshold for nothing) and, when one has no exact moments, leaves it untested although the
other's are its own.  Which estimators coincide is decided here on the case's structure and its
exact values at the point -- never by comparing sampled floats.  With the per-episode estimates of
:mod:`pgverify.montecarlo.estimators` (x_t the score grad log pi(a_t|s_t), G_t the return from t
discounted from 0, E the extra terms every estimator adds alike):

==========================================  =====================================================
condition (decided exactly)                  identical estimators, and why
==========================================  =====================================================
no policy score for parameter j: no          all of them, on parameter j: every estimate is
reachable (state, action) has a non-zero     x-weighted plus E, and x_j = 0 on every step
d pi / d theta_j (the sparse table keeps     (a deterministic policy: Silver et al. 2014, where
only the non-zero ones, so an absent entry   only the dynamics and reward families remain)
is an exact zero)
every episode has at most one step           reinforce, reward_to_go, no_discount_weighting:
(horizon 1, or every step from a start       G sum_t x_t = x_0 G_0 = sum_t x_t G_t = sum_t
state ends in a terminal state)              gamma^-t x_t G_t when t = 0 is the only step
every non-zero reward is on a step into a     reinforce, reward_to_go: the reward comes on an
terminal state (the case stores only the      episode's last step only, so G_t = G for every t
non-zero rewards)                            (FrozenLake: the goal)
gamma = 1 exactly at the point               reward_to_go, no_discount_weighting: gamma^-t = 1
V(s) = J exactly at every reachable          constant_baseline, value_baseline: G_t - gamma^t J =
non-terminal state (V_t(s) = J for every     G_t - gamma^t V(s_t) on every step
t with a horizon; exact rationals only)
==========================================  =====================================================

References: Williams (1992) for the score-function estimators; Sutton & Barto (2018), 13.3-13.4.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy

__all__ = ["identical_estimators"]


def _one_step(case) -> bool:
    """Whether every episode has at most one step, on the case's structure (its supports)."""
    if case.horizon is not None and case.horizon <= 1:
        return True
    for s in case.rho0:
        if s in case.terminal:
            continue
        for a, pe in case.pi.get(s, {}).items():
            if any(s2 not in case.terminal for s2 in case.P[s].get(a, {})):
                return False
    return True


def _rewards_at_the_end(case) -> bool:
    """Whether every stored (non-zero) reward is on a step into a terminal state."""
    return all(s2 in case.terminal or v == 0 for s in case.r for a in case.r[s] for s2, v in case.r[s][a].items())


def _gamma_is_one(case) -> bool:
    v = case.gamma.xreplace(dict(case.point)) if case.gamma.free_symbols else case.gamma
    return bool(v.is_Rational and v == 1)


def _values_equal_J(tab, V, J) -> bool:
    """V(s) = J (V_t(s) = J for every t with a horizon) at every reachable non-terminal state, in
    exact rationals (False when the values are not all Fractions: no exact equality test)."""
    from .recursive import _reachable

    if V is None or not isinstance(J, Fraction):
        return False
    live = [s for s in _reachable(tab) if not tab.terminal[s]]
    rows = V if tab.horizon is not None else [V]
    for row in rows:
        for s in live:
            if not isinstance(row[s], Fraction) or row[s] != J:
                return False
    return True


def identical_estimators(case, mdp, names, *, tab=None, V=None, J=None) -> list[dict]:
    """Groups of estimators among ``names`` that are identical per episode on this case.

    Parameters
    ----------
    case : Case
        The case at its point.
    mdp : SparseMDP
        Its sparse tables (:func:`~pgverify.montecarlo.sparse.sparse_tabulate`): which policy
        scores are non-zero.
    names : sequence of str
        The estimators checked, in the order tests are listed.
    tab, V, J : optional
        The exact tables (``tabulate(case, exact=True)``), their state values and objective, for the
        value-baseline rule; without them that rule is not applied.

    Returns
    -------
    list of dict
        ``{"estimators": [...], "parameters": [...], "why": "..."}``, each group with at least two
        estimators, in ``names`` order; a parameter is in at most one group with a given estimator.
    """
    names = list(names)
    params = list(mdp.parameters)
    scored = set(np.unique(mdp.x.par).tolist()) if len(mdp.x.par) else set()
    no_score = [p for j, p in enumerate(params) if j not in scored]
    groups = []
    if len(names) > 1 and no_score:
        groups.append({"estimators": names, "parameters": no_score,
                       "why": "no policy score: d log pi/d theta is 0 for these parameters at every step an "
                              "episode can take, so every estimator is the same sum of the start, dynamics and "
                              "reward terms"})
    rest = [p for p in params if p not in no_score]
    if not rest:
        return groups
    # union-find over the parameter-independent rules
    parent = {n: n for n in names}

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    reasons = {}

    def join(members, why):
        present = [m for m in members if m in parent]
        if len(present) < 2:
            return
        for m in present[1:]:
            ra, rb = find(present[0]), find(m)
            if ra != rb:
                parent[rb] = ra
        reasons.setdefault(tuple(present), why)

    if _one_step(case):
        join(("reinforce", "reward_to_go", "no_discount_weighting"),
             "every episode has at most one step, where G sum_t x_t = x_0 G_0 = sum_t x_t G_t and gamma^0 = 1")
    if _rewards_at_the_end(case):
        join(("reinforce", "reward_to_go"),
             "every reward is on the step into a terminal state, the episode's last, so G_t = G at every step")
    if _gamma_is_one(case):
        join(("reward_to_go", "no_discount_weighting"), "gamma = 1 exactly, so dropping gamma^t changes nothing")
    if tab is not None and _values_equal_J(tab, V, J):
        join(("constant_baseline", "value_baseline"),
             f"V(s) = J = {J} exactly at every reachable state, so the two baselines are the same number")
    classes = {}
    for n in names:
        classes.setdefault(find(n), []).append(n)
    for members in classes.values():
        if len(members) < 2:
            continue
        why = "; ".join(w for key, w in reasons.items() if set(key) & set(members) and len(set(key) & set(members)) > 1)
        groups.append({"estimators": members, "parameters": rest, "why": why})
    return groups
