"""Certified float64 moments over the sparse tables (pgverify.montecarlo.sparsemoments) against the exact
recursions of recursive.py (python-flint rationals, on the dense tables) with the same baselines, and
against the dense certified route: every exact value must lie within the stated bound, and the bounds
must be small enough to be useful."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pgverify
from pgverify.montecarlo import tabulate
from pgverify.montecarlo.estimators import ESTIMATORS, UNBIASED
from pgverify.montecarlo.moments import exact_moments
from pgverify.montecarlo.recursive import _recursive_moments
from pgverify.montecarlo.sparse import sparse_state_values, sparse_tabulate
from pgverify.montecarlo import sparsemoments
from pgverify.montecarlo.sparsemoments import sparse_moments
from pgverify.testing.random_cases import random_tabular_case

from ..conftest import CASES
from ..property.test_random_mdps import random_case


def _baselines(sp):
    """The baselines the sampled check uses: V by a sparse solve (floats), J = rho0 . V."""
    V = sparse_state_values(sp)
    V0 = V[0] if sp.horizon is not None else V
    return float(np.dot(sp.rho0, V0)), V


def _both(case, names=ESTIMATORS):
    """(exact, sparse): the exact recursions in rationals with the sparse route's float baselines taken
    as exact numbers, and the sparse certified route."""
    sp = sparse_tabulate(case)
    J, V = _baselines(sp)
    got = sparse_moments(sp, names, J=J, V=V)
    Vx = np.vectorize(Fraction, otypes=[object])(V)
    with mpmath.workdps(60):
        exact = _recursive_moments(tabulate(case, exact=True), names, J=Fraction(J), V=Vx)
    return exact, got


def _assert_enclosed(exact, got, rel):
    """Every exact mean and variance within its bound; the bounds tiny next to the values."""
    assert exact is not None and got is not None
    scale = max((abs(float(v)) for m in exact.values() if m[1] is not None for v in m[1]), default=0.0)
    for est, (mean, var, _) in exact.items():
        fmean, fvar, how, emean, evar = got[est]
        if mean is None:  # infinite moments: the sparse route says so too
            assert fmean is None and "never terminates" in how, (est, how)
            continue
        assert "over the sparse tables" in how, how
        assert all(abs(float(x) - y) <= e for x, y, e in zip(mean, fmean, emean, strict=True)), (est, "mean")
        if fvar is None:
            # see tests/montecarlo/test_certified.py: refused only where every exact variance is 0 -- or,
            # here, negligible: the float64 baselines J and V differ from the exact ones by roundings,
            # which leave the baseline estimators variances of 5.5e-30 or 1e-93 where the exact J would
            # give 0 (found by hypothesis: one state that never ends, reward 3p - 1 at p = 1/4 and 1/3,
            # discount 9/10).  The rewards and scores of these cases are of order 1, so 1e-12 is
            # negligible next to them
            assert all(abs(float(v)) <= 1e-12 * max(scale, 1.0) for v in var), (est, how, var)
            assert "variance sampled only" in how, (est, how)
            continue
        assert all(abs(float(x) - y) <= e for x, y, e in zip(var, fvar, evar, strict=True)), (est, "variance")
        assert all(e <= rel * (abs(float(v)) + 1e-6 * scale) + 1e-300 for v, e in zip(var, evar)), (est, max(evar))


@pytest.mark.parametrize("name", ["short_corridor", "two_state_softmax", "finite_horizon_chain", "entropy_bonus",
                                  "deterministic_policy"])
def test_sparse_moments_enclose_the_exact_ones_on_the_cases(name):
    exact, got = _both(pgverify.load_case(CASES / f"{name}.yaml"))
    _assert_enclosed(exact, got, rel=1e-9)


def test_sparse_moments_enclose_the_exact_ones_on_frozenlake_with_a_short_horizon(tmp_path):
    """FrozenLake 4x4 (44 parameters) cut to 7 steps, where the exact recursion is within budget."""
    text = (CASES / "frozenlake_4x4.yaml").read_text()
    assert "horizon: 100" in text
    path = tmp_path / "fl7.yaml"
    path.write_text(text.replace("horizon: 100", "horizon: 7"))
    exact, got = _both(pgverify.load_case(path))
    _assert_enclosed(exact, got, rel=1e-9)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
@example({"name": "random", "states": ["s0", "T"], "terminal": ["T"], "actions": ["a", "b"],
          "parameters": {"p": "1/4", "q": "1/5", "w": "1/5"}, "policy": {"s0": {"a": "p", "b": "1 - (p)"}},
          "transitions": {"s0": {"a": "s0", "b": "s0"}},
          "rewards": {"default": 0, "s0": {"a": "3*p - 1", "b": "3*p - 1"}}, "start": "s0", "discount": "9/10"})
@example({"name": "random", "states": ["s0", "T"], "terminal": ["T"], "actions": ["a", "b"],
          "parameters": {"p": "1/3", "q": "1/5", "w": "1/5"}, "policy": {"s0": {"a": "p", "b": "1 - (p)"}},
          "transitions": {"s0": {"a": "s0", "b": "s0"}},
          "rewards": {"default": 0, "s0": {"a": "3*p - 1", "b": "3*p - 1"}}, "start": "s0", "discount": "9/10"})
def test_sparse_moments_enclose_the_exact_ones_on_random_mdps(data):
    """Start, dynamics, reward and discount may depend on theta (the extra terms: scores of P and rho0,
    the pathwise and discount terms), cycles or not, with or without a horizon."""
    exact, got = _both(pgverify.Case.from_dict(data))
    _assert_enclosed(exact, got, rel=1e-6)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(5, 9), st.integers(0, 10**6), st.sampled_from(["19/20", "1/2", "1"]),
       st.sampled_from([None, 3, 6]))
def test_sparse_moments_enclose_the_exact_ones_on_random_tabular_cases(S, seed, gamma, horizon):
    """pgverify.testing.random_cases (tabular softmax, 2-4 actions, 2-5 successors): the shape of the
    large cases, small enough for the exact recursion."""
    case = pgverify.Case.from_dict(random_tabular_case(S, seed=seed, gamma=gamma, horizon=horizon, goal_every=2))
    exact, got = _both(case)
    _assert_enclosed(exact, got, rel=1e-6)


def test_sparse_and_dense_certified_routes_agree_on_frozenlake_4x4():
    """Horizon 100: both routes are float64 with bounds; their intervals must overlap, and the unbiased
    estimators' certified means must contain the exact gradient (pgverify's exact engines)."""
    case = pgverify.load_case(CASES / "frozenlake_4x4.yaml")
    sp = sparse_tabulate(case)
    J, V = _baselines(sp)
    got = sparse_moments(sp, ESTIMATORS, J=J, V=V)
    dense = exact_moments(tabulate(case, exact=True))  # the dense route's own exact baselines
    res = pgverify.check(case, mode="at-point")
    grad = [res.gradient[p].float for p in case.parameter_names]
    for est in ESTIMATORS:
        fmean, fvar, how, emean, evar = got[est]
        d = dense[est]
        assert how.startswith("float64 backward induction over the sparse tables") and "(certified: " in how, how
        assert all(abs(a - b) <= ea + eb for a, b, ea, eb in zip(fmean, d.mean, emean, d.mean_error))
        assert max(e / v for e, v in zip(evar, fvar) if v) < 1e-10
        if est in UNBIASED:
            assert all(abs(x - g) <= e + 2**-52 * abs(g) for x, g, e in zip(fmean, grad, emean)), est
        if est in ("reinforce", "reward_to_go", "no_discount_weighting", "group_mean", "group_mean_loo"):
            # no baseline: the same estimator in both routes, so the variances agree within the bounds
            assert all(abs(a - b) <= ea + eb for a, b, ea, eb in zip(fvar, d.variance, evar, d.variance_error))
        else:
            # the baselines differ by float64 rounding only (V solved in floats here, exactly there)
            assert all(abs(a - b) <= 1e-9 * abs(b) + ea + eb
                       for a, b, ea, eb in zip(fvar, d.variance, evar, d.variance_error))


def test_the_budget_is_checked_before_the_work(monkeypatch):
    case = pgverify.load_case(CASES / "frozenlake_4x4.yaml")
    sp = sparse_tabulate(case)
    J, V = _baselines(sp)
    work, memory = sparsemoments.sparse_moments_work(sp, ESTIMATORS)
    assert work > 0 and memory > 0
    monkeypatch.setattr(sparsemoments, "SPARSE_WORK_LIMIT", work / 2)
    assert sparse_moments(sp, ESTIMATORS, J=J, V=V) is None


@pytest.mark.parametrize("eps", ["10**-12", "10**-17"])
def test_ill_conditioned_systems_are_not_certified_and_say_so(eps):
    """The loop of tests/montecarlo/test_certified.py that ends with probability 1e-12 (1e-17: singular
    in float64) per step, without discount: no variance is certified, each says why, nothing raises,
    and a mean that is certified holds the exact one."""
    from .test_certified import _loop

    exact, got = _both(pgverify.Case.from_dict(_loop(eps)))
    assert exact["reward_to_go"][0] is not None  # finite exact moments
    for est in ESTIMATORS:
        mean, var, how, emean, _ = got[est]
        assert var is None and "sampled only" in how, (est, how)
        assert "never terminates" not in how
        if mean is not None:
            assert all(abs(float(x) - y) <= e for x, y, e in zip(exact[est][0], mean, emean)), est
