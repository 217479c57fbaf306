"""pgverify.testing: exact gradients for users' tests, assert_gradient_close, assert_unbiased, the plugin.

The estimators under test are written here with plain numpy from the policy table (the score of
pi(x|A) = p is 1/p after x and -1/(1-p) after y), not with pgverify's own estimators, so that
assert_unbiased is checked against code it did not write.
"""
import contextlib
import dataclasses
import importlib.metadata
import re
from fractions import Fraction

import numpy as np
import pytest

import pgverify
from pgverify.montecarlo import tabulate
from pgverify.montecarlo.moments import exact_moments
from pgverify.testing import (
    BiasDetected,
    GradientMismatch,
    HelperInputError,
    assert_gradient_close,
    assert_unbiased,
    exact_gradient,
    exact_objective,
    plugin,
)
from pgverify.testing.unbiased import _enumerated_mean

from .conftest import CASE_FILES, CASES

pytest_plugins = ["pytester"]

#: Discounted (gamma = 1/2) with a horizon, so dropping gamma^t is biased and every trajectory (19) can be
#: enumerated.  Constructed for these tests; its exact values below come from pgverify's engines, and the
#: biases are checked two ways (pgverify's estimator on the enumeration, and the test's own code on it).
DISCOUNTED = {
    "name": "discounted-two-state", "parameters": {"p": "1/3", "q": "3/4"},
    "states": ["A", "B", "T"], "terminal": ["T"], "actions": ["x", "y"], "start": "A",
    "discount": "1/2", "horizon": 4,
    "policy": {"A": {"x": "p", "y": "1 - p"}, "B": {"x": "q", "y": "1 - q"}},
    "transitions": {"A": {"x": "B", "y": {"A": "1/2", "T": "1/2"}}, "B": {"x": "T", "y": "A"}},
    "rewards": {"A": {"x": 1}, "B": {"x": 4, "y": -1}},
}


# -- the user's code: REINFORCE and its usual bugs, in plain numpy --------------------------------------
def scores(ep, flip=False):
    """(E, L, 2): d log pi(a_t | s_t) / d(p, q), by hand; zero after the end of each episode."""
    p, q = ep.theta["p"], ep.theta["q"]
    mask = ep.mask
    s = np.where(mask, ep.states, 0)
    a = np.where(mask, ep.actions, 0)
    if flip:  # the bug: the score of the other action (actions encoded the other way round)
        a = 1 - a
    in_a = s == ep.state_names.index("A")
    x = a == ep.action_names[ep.state_names.index("A")].index("x")
    prob = np.where(in_a, p, q)
    d = np.where(x, 1 / prob, -1 / (1 - prob)) * mask
    return np.stack([np.where(in_a, d, 0.0), np.where(in_a, 0.0, d)], axis=-1)


def returns(ep, from_zero=True):
    """G_t = sum_{t' >= t} gamma^t' r_t' (from_zero) or sum_{t' >= t} gamma^(t' - t) r_t' (not)."""
    disc = ep.gamma ** np.arange(ep.rewards.shape[1])
    G = np.flip(np.cumsum(np.flip(ep.rewards * disc, 1), 1), 1)
    return G if from_zero else G / disc


def reward_to_go(ep):  # Williams (1992); Sutton & Barto (2018), section 13.3, with gamma^t
    return (scores(ep) * returns(ep)[:, :, None]).sum(1)


def whole_return(ep):  # the whole return G_0 in place of G_t: also unbiased
    return scores(ep).sum(1) * returns(ep)[:, :1]


def dropped_gamma(ep):  # gamma^(t' - t) from each step: the gamma^t weight of step t is lost
    return (scores(ep) * returns(ep, from_zero=False)[:, :, None]).sum(1)


def wrong_sign(ep):
    return -reward_to_go(ep)


def wrong_action(ep):
    return (scores(ep, flip=True) * returns(ep)[:, :, None]).sum(1)


def mean_of(estimator):
    """The same estimator returning only the mean over the episodes, as a loss.backward() would."""
    return lambda ep: estimator(ep).mean(0)


# -- exact_gradient, exact_objective ---------------------------------------------------------------------
@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_exact_gradient_is_checks_gradient(path):
    """The Bellman engine alone at the point equals check()'s gradient (three engines, proved equal)."""
    res = pgverify.check(path)
    names, grad = exact_gradient(path)
    assert names == res.parameters
    assert grad.dtype == np.float64 and grad.shape == (len(names),)
    assert list(grad) == pytest.approx(res.gradient_floats(), rel=1e-14, abs=1e-300)
    assert exact_objective(path) == pytest.approx(res.objective.float, rel=1e-14)
    assert_gradient_close(grad, path, rtol=1e-14, atol=0)


def test_exact_gradient_takes_a_case_a_path_a_dict_and_a_point():
    """Short corridor, Sutton & Barto (2018) Example 13.1: dJ/dp = 2 (p^2 - 4p + 2) / (p^2 (p - 1)^2),
    which is 63/2 at p = 1/3, and J = 2 (2 - p) / (p (p - 1)) = -15 there (README, 'From Python')."""
    path = CASES / "short_corridor.yaml"
    case = pgverify.load_case(path)
    for given in (case, path, str(path)):
        assert exact_gradient(given, at={"p": "1/3"}) == (["p"], pytest.approx([31.5], rel=1e-15))
        assert exact_objective(given, at={"p": Fraction(1, 3)}) == pytest.approx(-15, rel=1e-15)
    assert exact_gradient(DISCOUNTED)[0] == ["p", "q"]
    with pytest.raises(pgverify.CaseFileError) as err:
        exact_gradient(case, at={"r": 1})
    assert str(err.value).endswith("at: unknown parameter 'r' (given: '1'). Parameters of short-corridor: p")


def test_finite_differences_of_the_objective_give_the_gradient():
    """Central differences of the exact J (error O(h^2) = 1e-10 here) against the exact gradient."""
    path = CASES / "two_state_softmax.yaml"
    h = 1e-5
    fd = [(exact_objective(path, at={k: h}) - exact_objective(path, at={k: -h})) / (2 * h) for k in ("theta", "phi")]
    assert_gradient_close(fd, path, rtol=1e-8)


def test_pgverify_estimators_exact_means_are_the_gradient():
    """The unbiased estimators of pgverify.montecarlo, their exact means by enumeration (50/81 on the chain)."""
    case = pgverify.load_case(CASES / "finite_horizon_chain.yaml")
    moments = exact_moments(tabulate(case, exact=True), ("reinforce", "reward_to_go", "value_baseline"))
    for mom in moments.values():
        assert_gradient_close([float(x) for x in mom.mean], case, rtol=1e-15, atol=0)


# -- assert_gradient_close -------------------------------------------------------------------------------
def test_assert_gradient_close_passes_for_the_exact_gradient_and_a_dict():
    path = CASES / "two_state_softmax.yaml"  # gradient (275/328, 1635/328): tests/reference
    assert_gradient_close([275 / 328, 1635 / 328], path)
    assert_gradient_close({"phi": 1635 / 328, "theta": 275 / 328}, path)
    assert_gradient_close(np.array([275 / 328, 1635 / 328]) * (1 + 5e-8), path)  # within rtol = 1e-7


def test_assert_gradient_close_names_the_parameter_that_is_off():
    path = CASES / "two_state_softmax.yaml"
    with pytest.raises(GradientMismatch) as err:
        assert_gradient_close([275 / 328, 5.0], path)
    assert str(err.value) == (
        "gradient of 'two-state-softmax' at theta = 0, phi = 0: 1 of 2 components off (rtol=1e-07, atol=1e-09)\n"
        "  parameter  exact                      given           difference  verdict\n"
        "  theta      275/328 (~0.838414634146)  0.838414634146  0           ok\n"
        "  phi        1635/328 (~4.98475609756)  5               0.0152      OFF")
    assert [r["ok"] for r in err.value.rows] == [True, False]
    assert isinstance(err.value, AssertionError)


def test_assert_gradient_close_bad_input():
    path = CASES / "two_state_softmax.yaml"
    with pytest.raises(HelperInputError) as err:
        assert_gradient_close([1.0], path)
    assert str(err.value) == ("actual: shape (1,), expected (2,) (given: [1.0]). "
                              "Give one number per parameter, in the order theta, phi")
    with pytest.raises(HelperInputError) as err:
        assert_gradient_close({"theta": 1.0, "psi": 2.0}, path)
    assert str(err.value) == ("actual: unknown parameter(s) 'psi'; missing 'phi' (given: 'theta', 'psi'). "
                              "Give one value for each parameter: theta, phi")
    with pytest.raises(HelperInputError, match="case: a case must be"):
        exact_gradient(42)


# -- assert_unbiased -------------------------------------------------------------------------------------
def on_four_seeds(estimator, case=DISCOUNTED, **options):
    """A correct estimator on seeds 0-3: the reports that passed.  Each seed fails with probability
    alpha (1e-4 by default), so one failure is allowed (two or more in four: probability 6e-8); no seed
    was picked, and a change of the sampler's random stream cannot break the test by bad luck alone."""
    passed, failed = [], []
    for seed in range(4):
        try:
            passed.append(assert_unbiased(estimator, case, seed=seed, **options))
        except BiasDetected as failure:
            failed.append(failure)
    assert len(failed) <= 1, "\n\n".join(map(str, failed))
    return passed


# z at seeds 0, 1, 2, 3 (10,000 episodes):
#   reward_to_go  p: -2.90 +1.75 +0.15 -1.02   q: -2.92 +1.46 -0.04 -0.56
#   whole_return  p: -2.81 +1.78 +0.21 -1.06   q: -1.30 +0.46 +0.29 -0.83
# so at alpha = 0.01 seed 0 was one of the 1% of seeds where an unbiased estimator fails (Holm: p = 0.0035
# <= 0.01/2); at the default 1e-4 it passes (p > 5e-5).
@pytest.mark.parametrize("estimator", [reward_to_go, whole_return], ids=lambda f: f.__name__)
def test_correct_estimators_pass(estimator):
    for report in on_four_seeds(estimator):
        assert report.passed and report.units == "episodes" and report.unit_count == 10_000
        assert report.match.name == {"reward_to_go": "reward_to_go", "whole_return": "reinforce"}[estimator.__name__]
        assert report.exact_bias.tolist() == [0.0, 0.0]
        assert np.abs(report.z).max() < 4


def test_a_false_alarm_is_called_one():
    """When the failing estimator's exact bias is 0, the message says that the failure is a false alarm."""
    report = on_four_seeds(reward_to_go)[0]
    failed = dataclasses.replace(report, passed=False, rejected=[True, False])
    assert failed.format().endswith("the exact bias is 0, so this failure is a false alarm: an unbiased estimator "
                                    "fails for a fraction alpha = 0.0001 of seeds; try another seed")
    assert "false alarm" not in report.format()


def test_dropped_gamma_fails_and_is_named_with_its_exact_bias():
    """Exact bias (2693/3456, 313/216) by enumeration; at 10,000 episodes that is z of about +18 (p) and
    +56 (q) (+16.81 and +55.02 at seed 0)."""
    with pytest.raises(BiasDetected) as err:
        assert_unbiased(dropped_gamma, DISCOUNTED)
    rep = err.value.report
    assert rep.rejected == [True, True] and min(rep.z) > 10
    assert (rep.match.name, rep.match.sign) == ("no_discount_weighting", 1)
    assert rep.match.bias == [Fraction(2693, 3456), Fraction(313, 216)]
    # the same bias from the test's own code run on every trajectory, weighted by p(tau)
    mean, tol, count, _ = _enumerated_mean(dropped_gamma, pgverify.Case.from_dict(DISCOUNTED), ["p", "q"], "episodes")
    assert count == 19 and tol < 1e-13
    np.testing.assert_allclose(mean - exact_gradient(DISCOUNTED)[1], [2693 / 3456, 313 / 216], rtol=1e-13)
    message = str(err.value)
    assert "on these episodes your estimator equals pgverify's no_discount_weighting" in message
    assert re.fullmatch(r"  parameter +exact gradient +sample mean +stderr +z +p +verdict +exact bias",
                        message.splitlines()[2])
    assert re.fullmatch(r"  p +2\.67998 .* OFF +2693/3456 \(~0\.779225\)", message.splitlines()[3])
    assert re.fullmatch(r"  q +0\.9375 .* OFF +313/216 \(~1\.44907\)", message.splitlines()[4])
    assert message.endswith("exact bias = exact mean of no_discount_weighting (enumeration of every trajectory) "
                            "- exact gradient")


def test_wrong_sign_fails_with_bias_minus_twice_the_gradient():
    """z of about -140 and -160 (-140.02, -162.32 at seed 0); the mean of -g is -grad J, so the bias is
    -2 grad J exactly."""
    with pytest.raises(BiasDetected) as err:
        assert_unbiased(wrong_sign, DISCOUNTED)
    rep = err.value.report
    assert max(rep.z) < -100
    assert rep.match.label == "minus reward_to_go"
    grad = [Fraction(str(pgverify.check(pgverify.Case.from_dict(DISCOUNTED)).gradient[p].value)) for p in "pq"]
    assert rep.match.bias == [-2 * g for g in grad]  # (-4631/864, -15/8)
    assert "a sign error" in str(err.value)


def test_wrong_action_score_fails_with_its_enumerated_bias():
    """z of about -155 and -100 (-156.85, -99.69 at seed 0); no estimator of pgverify's matches, so the exact
    mean comes from
    running the estimator on all 19 trajectories: bias (-3.60851, -3.41049)."""
    with pytest.raises(BiasDetected) as err:
        assert_unbiased(wrong_action, DISCOUNTED)
    rep = err.value.report
    assert max(rep.z) < -90 and rep.match is None and rep.trajectories == 19
    np.testing.assert_allclose(rep.exact_bias, [-3.60851, -3.41049], rtol=1e-5)
    message = str(err.value)
    assert "it equals none of pgverify's estimators" in message
    assert "exact bias = your estimator's mean over all 19 trajectories, weighted by p(tau)" in message


def test_an_estimator_that_returns_a_mean_is_tested_on_batch_means():
    for report in on_four_seeds(mean_of(reward_to_go)):
        assert report.units == "batch means" and report.unit_count == 20 and "Student t (19 degrees" in report.test
        assert report.match.name == "reward_to_go"
    with pytest.raises(BiasDetected) as err:  # t of about +20 and +60 (+22.19, +82.53 at seed 0)
        assert_unbiased(mean_of(dropped_gamma), DISCOUNTED)
    assert err.value.report.match.name == "no_discount_weighting"
    with pytest.raises(BiasDetected) as err:  # t = -179.53, -117.48 at seed 0; exact mean from 19 calls, one per trajectory
        assert_unbiased(mean_of(wrong_action), DISCOUNTED)
    np.testing.assert_allclose(err.value.report.exact_bias, [-3.60851, -3.41049], rtol=1e-5)


def test_a_dict_output_and_a_single_parameter_vector():
    on_four_seeds(lambda ep: dict(zip("pq", reward_to_go(ep).T)))
    coin = pgverify.load_case(CASES / "short_corridor.yaml")
    with pytest.raises(BiasDetected):  # shape (E,) is read as per-episode when n = 1: REINFORCE with no score
        assert_unbiased(lambda ep: ep.rewards.sum(1), coin, episodes=2_000)


def test_missing_families_are_said():
    """On the chain, q also moves the dynamics (slip probability q/4): a score-function estimator that
    only sees the policy estimates the policy family alone and misses the dynamics family."""
    path = CASES / "finite_horizon_chain.yaml"

    def policy_only(ep):
        q = ep.theta["q"]
        fwd = np.array([list(a).index("forward") if a else -1 for a in ep.action_names])
        d = np.where(ep.actions == fwd[np.where(ep.mask, ep.states, 0)], 1 / q, -1 / (1 - q)) * ep.mask
        return (d.sum(1) * ep.rewards.sum(1))[:, None]

    with pytest.raises(BiasDetected) as err:
        assert_unbiased(policy_only, path)
    assert "that mean is the policy family alone" in str(err.value)


def test_bad_estimator_output_and_bad_points():
    with pytest.raises(HelperInputError) as err:
        assert_unbiased(lambda ep: np.zeros((3, 2)), DISCOUNTED, episodes=100)
    assert str(err.value) == (
        "estimator output: the estimator's output has shape (3, 2) (given: ndarray of shape (3, 2)). Return one "
        "gradient per episode, shape (E, n) = (100, 2), or their mean, shape (n,) = (2,), in the parameter order p, q")
    with pytest.raises(HelperInputError, match="non-finite value at episode 0, parameter 'q'"):
        assert_unbiased(lambda ep: np.stack([np.zeros(ep.num_episodes), np.full(ep.num_episodes, np.nan)], 1),
                        DISCOUNTED, episodes=100)
    with pytest.raises(HelperInputError, match="unknown: 'r'; missing: 'q'"):
        assert_unbiased(lambda ep: {"p": 0.0, "r": 0.0}, DISCOUNTED, episodes=100)
    with pytest.raises(pgverify.CaseFileError, match="at: unknown parameter 'z'"):
        assert_unbiased(reward_to_go, DISCOUNTED, at={"z": 1})
    with pytest.raises(pgverify.CaseFileError, match="probability 2 outside"):
        assert_unbiased(reward_to_go, DISCOUNTED, at={"p": 2})


def test_the_episode_arrays():
    """The documented format: dtypes, padding after the end, and the terminal state as the last next state."""
    seen = {}

    def look(ep):
        seen["ep"] = ep
        return reward_to_go(ep)

    with contextlib.suppress(BiasDetected):  # only the arrays matter here
        assert_unbiased(look, DISCOUNTED, episodes=500)
    ep = seen["ep"]
    assert ep.states.dtype == ep.actions.dtype == ep.next_states.dtype == ep.lengths.dtype == np.int64
    assert ep.rewards.dtype == np.float64
    assert ep.states.shape == ep.rewards.shape == (500, ep.lengths.max()) and ep.lengths.max() <= 4
    pad = ~ep.mask
    assert (ep.states[pad] == -1).all() and (ep.actions[pad] == -1).all() and (ep.rewards[pad] == 0).all()
    assert ((ep.states >= 0) == ep.mask).all()
    ended = ep.lengths < 4
    last = ep.next_states[np.arange(500), ep.lengths - 1]
    assert (ep.terminal[last[ended]]).all()
    assert ep.action_names == (("x", "y"), ("x", "y"), ()) and ep.theta == {"p": 1 / 3, "q": 0.75}
    assert ep.gamma == 0.5 and ep.horizon == 4 and ep.parameter_names == ("p", "q")


# -- the pytest plugin -----------------------------------------------------------------------------------
pgv_fixture, pgverify_case_fixture = plugin.pgv, plugin.pgverify_case  # the fixtures, in this module


def test_fixtures(request):
    """The plugin's fixtures used in this module (as a conftest would); paths relative to this file's folder."""
    pgv = request.getfixturevalue("pgv_fixture")
    pgverify_case = request.getfixturevalue("pgverify_case_fixture")
    case = pgverify_case("../cases/short_corridor.yaml", at={"p": "1/3"})
    assert case.point[case.symbol("p")] == Fraction(1, 3)
    assert pgv.exact_gradient("../cases/short_corridor.yaml", at={"p": "1/3"})[1][0] == 31.5
    pgv.assert_gradient_close([31.5], case)
    with pytest.raises(BiasDetected) as err:
        pgv.assert_unbiased(wrong_sign, DISCOUNTED)
    assert err.value.report.seed == (request.config.getoption("pgverify_seed", default=None) or 0)


def _plugin_args():
    """``-p pgverify.testing.plugin`` unless an installed entry point already loads it."""
    installed = any(ep.value.startswith("pgverify.testing") for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "pgverify.testing.plugin"]


def test_plugin_in_a_fresh_session(pytester):
    """Loaded as a plugin: the fixtures, a relative case path, --pgverify-seed, and a failure's message."""
    (pytester.path / "bandit.yaml").write_text((CASES.parent / "docs/examples/bandit.yaml").read_text())
    pytester.makepyfile(test_user="""
        import numpy as np
        import pytest

        def reinforce(ep):
            p = ep.theta["p"]
            go = ep.actions[:, 0] == 1
            return (np.where(go, 1 / p, -1 / (1 - p)) * ep.rewards.sum(1))[:, None]

        def test_gradient(pgv):
            names, grad = pgv.exact_gradient("bandit.yaml")
            assert names == ["p"] and grad[0] == 1.0

        def test_seed(pgv):
            with pytest.raises(AssertionError) as err:
                pgv.assert_unbiased(lambda ep: 2 * reinforce(ep), "bandit.yaml", episodes=1000)
            assert err.value.report.seed == 7

        def test_case(pgverify_case):
            assert pgverify_case("bandit.yaml").name == "bandit"

        def test_biased(pgv):
            pgv.assert_unbiased(lambda ep: -reinforce(ep), "bandit.yaml", episodes=1000)
    """)
    result = pytester.runpytest(*_plugin_args(), "--pgverify-seed", "7", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*BiasDetected: assert_unbiased: the estimator's mean differs*",
                                 "*1000 episodes, seed 7*", "*minus reinforce*a sign error*"])


@pytest.mark.slow
def test_false_alarm_rate_is_alpha():
    """A correct estimator fails for about alpha of seeds: 200 seeds at alpha = 0.01 (given: at the default
    1e-4 no failure is expected in 200) expect 2 failures; 7 or more has probability 0.005 (binomial)."""
    fails = 0
    for seed in range(1000, 1200):
        try:
            assert_unbiased(reward_to_go, DISCOUNTED, seed=seed, episodes=2_000, alpha=0.01)
        except BiasDetected:
            fails += 1
    assert fails <= 6
