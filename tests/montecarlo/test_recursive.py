"""Exact moments by the recursions of pgverify.montecarlo.recursive, against two independent routes:
enumerating every trajectory (where that is finite) and, on cyclic cases, the exact gradient and
the sample moments."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import pgverify
from pgverify.montecarlo import sample, tabulate
from pgverify.montecarlo.estimators import ESTIMATORS, UNBIASED, estimate
from pgverify.montecarlo.moments import enumerate_episodes, exact_moments, gamma_dropped_mean, state_values
from pgverify.montecarlo.recursive import recursive_moments

from ..conftest import CASES
from ..property.test_random_mdps import random_case


def _rec(case):
    mdp = tabulate(case, exact=True)
    with mpmath.workdps(60):  # as exact_moments does: V and J at 60 digits on irrational points
        V = state_values(mdp)
        V0 = V[0] if mdp.horizon is not None else V
        J = sum((mdp.rho0[s] * V0[s] for s in range(len(V0))), mdp.pi.flat[0] * 0)
    return mdp, recursive_moments(mdp, ESTIMATORS, J=J, V=V)


def _same(a, b):
    """Equal: exactly for Fractions, to 50 digits for the 60-digit numbers of irrational points."""
    if all(isinstance(x, Fraction) for x in a + b):
        return a == b
    return all(abs(x - y) <= 1e-50 * max(1, abs(y)) for x, y in zip(a, b, strict=True))


def _exact_gradient(case):
    res = pgverify.check(case, mode="at-point")
    return [Fraction(res.gradient[p].value) for p in case.parameter_names]


@pytest.mark.parametrize("name", ["finite_horizon_chain", "entropy_bonus", "deterministic_policy"])
def test_recursions_equal_enumeration_on_the_cases(name):
    case = pgverify.load_case(CASES / f"{name}.yaml")
    mdp, rec = _rec(case)
    assert enumerate_episodes(mdp) is not None
    enum = exact_moments(mdp)
    for est in ESTIMATORS:
        mean, var, how = rec[est]
        assert how in ("linear algebra", "backward induction", "linear algebra and independence",
                       "backward induction and independence")
        assert _same(mean, enum[est].mean), est
        if var is not None:  # the group estimators have exact means only
            assert _same(var, enum[est].variance), est


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_recursions_equal_enumeration_on_random_mdps(data):
    """Start, dynamics, reward and discount may all depend on theta here (the extra terms)."""
    case = pgverify.Case.from_dict(data)
    mdp, rec = _rec(case)
    got = enumerate_episodes(mdp)
    if got is None:  # cycles without a horizon: the unbiased ones must have the exact gradient as mean
        grad = _exact_gradient(case)
        for est in UNBIASED:
            mean, _, how = rec[est]
            if mean is not None:
                assert mean == grad, (est, how)
            else:
                assert est in ("reinforce", "group_mean_loo") and "never terminates" in how
        return
    enum = exact_moments(mdp)
    for est in ESTIMATORS:
        assert rec[est][0] == enum[est].mean, est
        if rec[est][1] is not None:
            assert rec[est][1] == enum[est].variance, est


def test_cyclic_corridor_means_are_the_gradient_and_variances_match_sampling():
    """The short corridor (Sutton & Barto 2018, Example 13.1) has cycles: no enumeration.  The
    unbiased estimators' exact means are the gradient, 8 at p = 1/2 (J'(p) from
    J(p) = 2(2 - p)/(p(p - 1))), and the exact variances agree with 100,000 sampled episodes."""
    case = pgverify.load_case(CASES / "short_corridor.yaml")
    mdp, rec = _rec(case)
    assert enumerate_episodes(mdp) is None
    for est in UNBIASED:
        assert rec[est][0] == [Fraction(8)], est
    assert rec["group_mean"][0] == [Fraction(7)]  # (G - 1)/G of the policy family, G = 8
    fl = tabulate(case)
    ep = sample(fl, 100_000, seed=3)
    J = pgverify.check(case).objective.float
    for est in ("reinforce", "reward_to_go", "constant_baseline", "value_baseline", "group_mean", "group_mean_loo"):
        g = estimate(est, fl, ep, J=J, V=state_values(fl))[:, 0]
        if est.startswith("group"):  # one episode's share of its group: sqrt(8) times the group means
            g = g.reshape(-1, 8).mean(1) * np.sqrt(8)
        exact_var = float(rec[est][1][0])
        # the sample variance of 100,000 heavy-tailed values: within 10% (its own standard
        # error, from the sample's fourth moment, is about 2-3% here)
        se_var = np.sqrt(np.mean((g - g.mean()) ** 4) - g.var() ** 2) / np.sqrt(len(g))
        assert abs(g.var(ddof=1) - exact_var) < max(0.1 * exact_var, 5 * se_var), (est, g.var(), exact_var)


def test_gamma_dropped_mean_agrees_with_the_visits_formula():
    """Two derivations of the gamma-dropped estimator's mean on a cyclic case: the recursion for
    sum_t score_t H_t, and undiscounted visits times grad pi times Q (gamma_dropped_mean)."""
    from .test_estimators import DISCOUNTED

    data = dict(DISCOUNTED)
    data.pop("horizon")
    case = pgverify.Case.from_dict(data)
    _, rec = _rec(case)
    assert rec["no_discount_weighting"][0] == gamma_dropped_mean(case)
    assert rec["no_discount_weighting"][0] != _exact_gradient(case)  # biased for gamma = 1/2


def test_continuing_task_has_no_finite_moments_for_undiscounted_sums():
    case = pgverify.load_case(CASES / "two_state_softmax.yaml")  # no terminal state, gamma < 1
    _, rec = _rec(case)
    for est in ("reinforce", "no_discount_weighting"):
        assert rec[est][0] is None and "never terminates" in rec[est][2]
    grad = _exact_gradient(case)
    for est in ("reward_to_go", "constant_baseline", "value_baseline"):
        assert rec[est][0] == grad


def test_the_check_reports_the_exact_variance_and_where_it_came_from():
    case = pgverify.load_case(CASES / "short_corridor.yaml")
    res = pgverify.check(case, monte_carlo={"episodes": 4000, "seed": 2})
    e = res.monte_carlo.estimators["value_baseline"]
    assert e["variance_from"] == "linear algebra" and e["exact_mean_from"] == "linear algebra"
    assert e["exact_variance"]["p"] == pytest.approx(4720)


def _group_by_enumerating_tuples(mdp, name, G):
    """Exact mean and G * variance of a group's mean by enumerating every G-tuple of trajectories."""
    import itertools

    ep, w = enumerate_episodes(mdp)
    idx = np.array(list(itertools.product(range(len(w)), repeat=G))).ravel()
    tuples = ep.take(idx)
    W = np.prod(w[idx].reshape(-1, G), axis=1)
    g = estimate(name, mdp, tuples, group=G)
    U = g.reshape(-1, G, g.shape[1]).mean(1)
    mean = (W[:, None] * U).sum(0)
    return list(mean), list(((W[:, None] * U * U).sum(0) - mean * mean) * G)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_group_moments_equal_enumeration_of_whole_groups(data):
    """The group estimators' exact variance (from one episode's moments and independence) against
    enumerating every group of G = 3 trajectories, on random MDPs with a horizon."""
    data = dict(data, horizon=data.get("horizon") or 2)
    data.setdefault("discount", "1/2")
    case = pgverify.Case.from_dict(data)
    mdp = tabulate(case, exact=True)
    if len(enumerate_episodes(mdp)[1]) > 40:
        return  # 40^3 groups at most
    V = state_values(mdp)
    J = sum((mdp.rho0[s] * V[0][s] for s in range(len(V[0]))), Fraction(0))
    for name in ("group_mean", "group_mean_loo"):
        mean, var, how = recursive_moments(mdp, (name,), J=J, V=V, group=3)[name]
        assert how == "backward induction and independence"
        assert (mean, var) == _group_by_enumerating_tuples(mdp, name, 3), name
