"""Estimators: exact moments, predicted biases confirmed by sampling, false alarms and power."""
import math
from pathlib import Path
from fractions import Fraction

import numpy as np
import pytest

import pgverify
from pgverify.montecarlo import sample, tabulate
from pgverify.montecarlo.check import holm, monte_carlo
from pgverify.montecarlo.estimators import estimate
from pgverify.montecarlo.moments import exact_moments, state_values

from ..conftest import CASES

DISCOUNTED = {  # a finite case with gamma < 1, where dropping gamma^t biases the estimator
    "name": "discounted-chain", "parameters": {"p": "1/3"}, "states": ["A", "B", "T"], "terminal": ["T"],
    "actions": ["x", "y"], "start": "A", "discount": "1/2", "horizon": 3,
    "policy": {"A": {"x": "p", "y": "1 - p"}, "B": {"x": "p", "y": "1 - p"}},
    "transitions": {"A": {"x": "B", "y": {"A": "1/2", "T": "1/2"}}, "B": {"x": "T", "y": "A"}},
    "rewards": {"default": 0, "A": {"x": 1}, "B": {"x": 4, "y": -1}},
}


def test_unbiased_estimators_have_the_gradient_as_exact_mean():
    case = pgverify.load_case(CASES / "finite_horizon_chain.yaml")
    grad = Fraction(pgverify.check(case).gradient["q"].value)
    mom = exact_moments(tabulate(case, exact=True))
    for name in ("reinforce", "reward_to_go", "constant_baseline", "value_baseline", "group_mean_loo"):
        assert mom[name].mean == [grad], name  # exactly 50/81
    # baselines reduce the variance here (exact variances from enumeration)
    assert mom["value_baseline"].variance[0] < mom["constant_baseline"].variance[0] < mom["reinforce"].variance[0]


def test_group_mean_is_biased_by_the_factor():
    """Own-return group mean: E = (G-1)/G * policy family + other families (here only policy)."""
    case = pgverify.Case.from_dict(DISCOUNTED)
    res = pgverify.check(case)
    mom = exact_moments(tabulate(case, exact=True), ("group_mean",), group=8)
    assert mom["group_mean"].mean == [Fraction(7, 8) * Fraction(res.gradient["p"].value)]


def test_dropping_gamma_is_biased_and_the_bias_is_exact():
    case = pgverify.Case.from_dict(DISCOUNTED)
    res = pgverify.check(case)
    grad = Fraction(res.gradient["p"].value)
    mom = exact_moments(tabulate(case, exact=True), ("no_discount_weighting", "reward_to_go"))
    assert mom["reward_to_go"].mean == [grad]
    assert mom["no_discount_weighting"].mean[0] != grad  # biased for gamma < 1 (Nota & Thomas 2020)
    mc = monte_carlo(case, res, episodes=40_000, seed=5, estimators=("no_discount_weighting", "reward_to_go"))
    entry = mc.estimators["no_discount_weighting"]
    assert entry["unbiased"] is False and entry["consistent"] is True  # samples agree with the biased mean
    assert entry["bias"]["p"] == pytest.approx(float(mom["no_discount_weighting"].mean[0] - grad), rel=1e-12)


def test_power_a_biased_estimator_compared_with_the_gradient_fails():
    """Compared with the gradient instead of its own mean, the own-return group mean is caught."""
    case = pgverify.load_case(CASES / "entropy_bonus.yaml")
    res = pgverify.check(case)
    mdp = tabulate(case)
    ep = sample(mdp, 80_000, seed=11)
    g = estimate("group_mean", mdp, ep, group=8).reshape(-1, 8, 2).mean(1)
    grad = np.array([res.gradient[p].float for p in ("t1", "t2")])
    z = (g.mean(0) - grad) / (g.std(0, ddof=1) / math.sqrt(len(g)))
    assert np.abs(z).max() > 4  # bias grad/8 is many standard errors at this sample size
    # ... while against its own exact mean it is consistent
    mc = monte_carlo(case, res, episodes=80_000, seed=11, estimators=("group_mean",))
    assert mc.estimators["group_mean"]["consistent"] is True


def test_false_alarm_rate_over_many_seeds():
    """A correct case must pass at the stated rate: with alpha = 1% family-wise, 40 seeds give at most
    a few failures (P(4 or more) = 8e-4 for a correct procedure)."""
    case = pgverify.load_case(CASES / "finite_horizon_chain.yaml")
    res = pgverify.check(case)
    failures = sum(not monte_carlo(case, res, episodes=2_000, seed=s).consistent for s in range(40))
    assert failures <= 3


def test_holm():
    assert holm([0.001, 0.04, 0.03], 0.05) == [True, False, False]  # 0.03 > 0.05/2
    assert holm([0.001, 0.02, 0.01], 0.05) == [True, True, True]
    assert holm([0.2], 0.05) == [False]


def test_state_values_are_exact():
    case = pgverify.load_case(CASES / "short_corridor.yaml")
    V = state_values(tabulate(case, exact=True))
    assert list(V) == [Fraction(-12), Fraction(-10), Fraction(-6), Fraction(0)]  # J(1/2) = -12 at S0


def test_gamma_dropped_mean_by_linear_algebra_matches_enumeration():
    """On an acyclic discounted case without a horizon both ways apply; they must agree exactly."""
    data = dict(DISCOUNTED)
    data.pop("horizon")
    data["transitions"] = {"A": {"x": "B", "y": {"B": "1/2", "T": "1/2"}}, "B": {"x": "T", "y": "T"}}
    case = pgverify.Case.from_dict(data)
    from pgverify.montecarlo.moments import gamma_dropped_mean

    by_enumeration = exact_moments(tabulate(case, exact=True), ("no_discount_weighting",))
    assert gamma_dropped_mean(case) == by_enumeration["no_discount_weighting"].mean
    grad = Fraction(pgverify.check(case).gradient["p"].value)
    assert gamma_dropped_mean(case)[0] != grad  # biased


def test_gamma_dropped_on_a_cyclic_case_is_tested_against_its_exact_mean():
    data = dict(DISCOUNTED)
    data.pop("horizon")  # cycles (A -y-> A, B -y-> A) and gamma = 1/2: enumeration is impossible
    case = pgverify.Case.from_dict(data)
    res = pgverify.check(case)
    mc = monte_carlo(case, res, episodes=40_000, seed=9, estimators=("no_discount_weighting",))
    e = mc.estimators["no_discount_weighting"]
    assert e["exact_mean_from"].startswith("linear algebra") and e["unbiased"] is False
    assert e["consistent"] is True


def test_batches_report_progress_and_are_reproducible(monkeypatch):
    import sys

    mod = sys.modules["pgverify.montecarlo.check"]
    monkeypatch.setattr(mod, "BATCH", 1000)
    case = pgverify.load_case(CASES / "short_corridor.yaml")
    res = pgverify.check(case)
    calls = []
    a = monte_carlo(case, res, episodes=3000, seed=4, estimators=("reinforce",),
                    progress=lambda done, total: calls.append((done, total)))
    b = monte_carlo(case, res, episodes=3000, seed=4, estimators=("reinforce",))
    assert calls == [(1000, 3000), (2000, 3000), (3000, 3000)]
    assert a.estimators["reinforce"]["sample_mean"] == b.estimators["reinforce"]["sample_mean"]


def test_irrational_point_gives_exact_moments_in_60_digits():
    """At p = 2 - sqrt(2) (the corridor's optimum) the arrays mix Fractions and mpf numbers."""
    case = pgverify.load_case(CASES / "short_corridor.yaml").at({"p": "2 - sqrt(2)"})
    mdp = tabulate(case, exact=True)
    assert all(isinstance(x, __import__("mpmath").mpf) for x in mdp.dlog_pi.flat if x != 0)
    res = pgverify.check(case, mode="at-point", monte_carlo={"episodes": 2000, "seed": 1})
    assert abs(res.gradient["p"].float) < 1e-40  # the optimum
    assert res.monte_carlo.consistent


def test_no_parameters_skips_sampling_with_a_warning():
    case = pgverify.Case.from_dict({k: v for k, v in DISCOUNTED.items() if k != "parameters"} | {
        "policy": {"A": {"x": "1/3", "y": "2/3"}, "B": {"x": "1/3", "y": "2/3"}}})
    res = pgverify.check(case, monte_carlo={"episodes": 800})
    assert res.monte_carlo is None and res.verified
    assert any("no parameters" in w and "Monte Carlo skipped" in w for w in res.warnings)


def test_at_a_boundary_point_group_means_use_the_general_formula():
    """docs/examples/loops_h.yaml at p = 1: the action 'leave' has probability 0 but carries gradient,
    so sum_t score_t has mean 5, not 0.  Every episode then runs 5 steps with return 5, the group
    estimators are identically 0, and their exact mean must be 0 (the interior-point formula
    (G-1)/G E[H S] gave 9.297, and the check then failed them)."""
    from fractions import Fraction

    from pgverify.montecarlo.recursive import at_boundary

    case = pgverify.load_case(Path(__file__).parents[2] / "docs" / "examples" / "loops_h.yaml")
    assert at_boundary(tabulate(case)) and at_boundary(tabulate(case, exact=True))
    mom = exact_moments(tabulate(case, exact=True))
    assert mom["group_mean"].mean == [0] and mom["group_mean_loo"].mean == [0]
    assert mom["group_mean"].variance == [0]
    res = pgverify.check(case)
    mc = monte_carlo(case, res, episodes=2_000, seed=0)
    assert mc.consistent and mc.estimators["group_mean"]["z"]["p"] == 0.0
    for path in CASES.glob("*.yaml"):  # none of the reference cases is at a boundary point
        assert not at_boundary(tabulate(pgverify.load_case(path))), path
    assert Fraction(res.gradient["p"].value) == Fraction(21, 4)


DATA = Path(__file__).parent / "data"


def test_boundary_points_are_found_in_start_policy_and_dynamics_only_where_the_derivative_is_not_zero():
    from pgverify.montecarlo.recursive import at_boundary

    # P(G1) = q at q = 0 carries gradient through the dynamics: a boundary point
    assert at_boundary(tabulate(pgverify.load_case(DATA / "dynamics_boundary.yaml")))
    # pi(stop) = (1 - p)^2 at p = 1 is 0 with derivative 0: not one
    assert not at_boundary(tabulate(pgverify.load_case(DATA / "flat_boundary.yaml")))
    # a softmax probability that underflows in float64 is not 0: not one either
    far = pgverify.load_case(DATA / "zero_variance_chain.yaml").at({"theta": "-800"})
    assert not at_boundary(tabulate(far))


def test_a_zero_variance_estimator_passes_despite_rounding_noise():
    """value_baseline is exactly 0 on every episode of this chain (both actions lead to the same
    state), but float64 gives values of about 1e-17: the test must call that agreement, not z = inf."""
    case = pgverify.load_case(DATA / "zero_variance_chain.yaml")
    mc = monte_carlo(case, pgverify.check(case), episodes=2_000, seed=0)
    vb = mc.estimators["value_baseline"]
    assert vb["exact_variance"]["theta"] == 0 and vb["z"]["theta"] == 0.0
    assert mc.consistent
