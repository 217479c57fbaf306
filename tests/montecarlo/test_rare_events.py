"""Rare events: a sample mean carried by a few large values is not normal, and the z-test must say
"inconclusive" instead of a false alarm; where the events are common enough it must still test."""
import math
from pathlib import Path

import numpy as np
import pytest

import pgverify
from pgverify.montecarlo import sample, tabulate
from pgverify.montecarlo.check import NEFF_MIN, monte_carlo

from ..conftest import CASES

LOTTERY = {  # one step: the risky action wins 1 with probability 1/100000
    "name": "lottery", "parameters": {"t": "0"}, "states": ["S", "W", "L"], "terminal": ["W", "L"],
    "actions": ["safe", "risky"], "start": "S", "discount": 1,
    "policy": {"S": {"risky": "1/(1 + exp(-t))", "safe": "1 - 1/(1 + exp(-t))"}},
    "transitions": {"S": {"safe": "L", "risky": {"W": "1/100000", "L": "99999/100000"}}},
    "rewards": {"default": 0, "S": {"risky": {"W": 1}}},
}


def test_one_rare_hit_is_inconclusive_not_a_false_alarm():
    case = pgverify.Case.from_dict(LOTTERY)
    mdp = tabulate(case)
    episodes = 2_000  # about 0.02 expected wins
    # the first seed whose sample holds a win (found by sampling, so the test does not hard-code it)
    seed = next(s for s in range(2_000) if (sample(mdp, episodes, seed=s).rewards > 0).any())
    res = pgverify.check(case)
    mc = monte_carlo(case, res, episodes=episodes, seed=seed)
    rf = mc.estimators["reinforce"]
    assert abs(rf["z"]["t"]) > 5  # one win alone is five standard errors and more
    assert rf["effective_episodes"]["t"] < 2
    assert rf["inconclusive"] == ["t"] and rf["consistent"] is None
    assert mc.consistent and mc.inconclusive >= 1
    assert "inconclusive" in mc.threshold


def test_common_events_are_still_tested():
    """On the cases in cases/ with no rare events every test counts (none is inconclusive)."""
    for name in ("short_corridor", "finite_horizon_chain", "entropy_bonus"):
        case = pgverify.load_case(CASES / f"{name}.yaml")
        mc = monte_carlo(case, pgverify.check(case), episodes=10_000, seed=3)
        assert mc.inconclusive == 0, (name, mc.threshold)
        for e in mc.estimators.values():
            assert all(v >= NEFF_MIN for v in e["effective_episodes"].values())


def test_power_through_the_check_a_wrong_exact_mean_is_caught_on_frozenlake():
    """FrozenLake 4x4 takes the certified float64 route, where the unbiased estimators are compared
    with the exact gradient.  Shift the gradient of the best-sampled parameter by 6 exact standard
    errors: the test of that parameter must fail, for every unbiased estimator that tests it."""
    case = pgverify.load_case(CASES / "frozenlake_4x4.yaml")
    res = pgverify.check(case, mode="at-point")
    episodes = 10_000
    honest = monte_carlo(case, res, episodes=episodes, seed=5, estimators=("reward_to_go",))
    e = honest.estimators["reward_to_go"]
    assert honest.consistent and e["stderr_from"] == "exact variance"
    p = max(e["effective_episodes"], key=e["effective_episodes"].get)
    assert e["effective_episodes"][p] >= NEFF_MIN
    shift = 6 * e["stderr"][p]
    res.gradient[p].float += shift
    wrong = monte_carlo(case, res, episodes=episodes, seed=5, estimators=("reward_to_go",))
    assert not wrong.consistent and wrong.estimators["reward_to_go"]["consistent"] is False
    # the z-test alone rejects it: below alpha / (number of tests), Holm's first threshold
    z = wrong.estimators["reward_to_go"]["z"][p]
    assert math.erfc(abs(z) / math.sqrt(2)) <= wrong.alpha / len(case.parameter_names)
    # and, independently, the certified float64 mean now contradicts the (wrong) gradient
    assert wrong.disagreements == ["reward_to_go"]


def test_assert_unbiased_says_inconclusive_instead_of_a_false_alarm():
    """The test helper applies the same rule: a correct REINFORCE on the lottery, at a seed whose
    sample holds one win, raises SampleInconclusive (not BiasDetected) unless told to allow it."""
    from pgverify.testing import BiasDetected, SampleInconclusive, assert_unbiased

    case = pgverify.Case.from_dict(LOTTERY)
    mdp = tabulate(case)
    episodes = 2_000
    seed = next(s for s in range(2_000) if (sample(mdp, episodes, seed=s).rewards > 0).any())

    def reinforce(ep):  # d/dt log pi: risky 1 - sigma(t), safe -sigma(t); sigma(0) = 1/2
        risky = np.array([ep.action_names[s][a] == "risky" for s, a in zip(ep.states[:, 0], ep.actions[:, 0])])
        return (np.where(risky, 0.5, -0.5) * ep.rewards.sum(1))[:, None]

    with pytest.raises(SampleInconclusive) as err:
        assert_unbiased(reinforce, case, episodes=episodes, seed=seed)
    assert not isinstance(err.value, BiasDetected)
    report = err.value.report
    assert report.inconclusive == ["t"] and report.passed and report.effective_episodes[0] < 2
    assert "inconclusive: fewer than 50 effective episodes" in str(err.value)
    assert assert_unbiased(reinforce, case, episodes=episodes, seed=seed, allow_inconclusive=True).passed
    # a wrong sign is still caught where the sample can test it (a common event: seed 0, many episodes)
    with pytest.raises(BiasDetected):
        assert_unbiased(lambda ep: -reinforce(ep), pgverify.Case.from_dict(
            {**LOTTERY, "transitions": {"S": {"safe": "L", "risky": {"W": "1/2", "L": "1/2"}}}}), episodes=4_000)


@pytest.mark.slow
def test_false_alarm_rate_on_frozenlake_over_many_seeds():
    """FrozenLake 4x4 is the case in cases/ with rare events (J = 0.0138): over 20 seeds of 10,000
    episodes the whole check (308 tests, certified variances, the n_eff rule) may fail at most twice
    (at the nominal 1%, P(3 or more of 20) = 1e-3)."""
    case = pgverify.load_case(CASES / "frozenlake_4x4.yaml")
    res = pgverify.check(case, mode="at-point")
    runs = [monte_carlo(case, res, episodes=10_000, seed=s) for s in range(20)]
    assert sum(not mc.consistent for mc in runs) <= 2
    assert all(not mc.disagreements for mc in runs)
    # and not everything was left untested: some parameters have enough effective episodes
    assert all(mc.inconclusive < 7 * len(case.parameters) for mc in runs)


def test_effective_episodes_does_not_depend_on_the_scale():
    from pgverify.montecarlo.check import effective_episodes

    rng = np.random.default_rng(0)
    units = rng.normal(size=(3000, 1))
    base = effective_episodes(units, [0.0])[0]
    assert 800 < base < 1200  # about episodes / 3 for normal estimates
    for scale in (1e78, 1e-85):
        assert np.isclose(effective_episodes(units * scale, [0.0])[0], base)
    one_hit = np.zeros((3000, 1))
    one_hit[17] = 1e-85
    assert effective_episodes(one_hit, [0.0])[0] == 1.0


def test_a_zero_exact_variance_is_still_tested():
    """A constant estimate (exact variance 0) is tested: z = 0 when it equals its exact mean to
    rounding, infinite otherwise -- never dropped from the count."""
    from pgverify.montecarlo.check import _z

    col = np.full(100, 1e8)
    assert _z(1e8 * (1 + 1e-15), 1e8, 0.0, 0.0, col) == 0.0
    assert _z(1e8 + 1.0, 1e8, 0.0, 0.0, col) == math.inf
    assert _z(0.5, 1.0, 0.1, 0.2, col) == pytest.approx(-3.0)  # the exact mean's bound is subtracted


def test_a_constant_wrong_estimator_fails_by_its_exact_bias():
    """An estimator that always returns 0: every episode gives the same value, so sampling cannot
    test it, but its exact mean (enumeration) is 0 and the gradient 1, so it must fail, saying why."""
    from pgverify.testing import BiasDetected, assert_unbiased

    bandit = Path(__file__).parents[2] / "docs" / "examples" / "bandit.yaml"
    with pytest.raises(BiasDetected) as err:
        assert_unbiased(lambda ep: np.zeros((ep.num_episodes, 1)), str(bandit), episodes=2_000)
    report = err.value.report
    assert report.constant == ["p"] and report.decided_by_exact_bias == ["p"]
    assert "every episode gave the same value for p" in str(err.value)
    assert "not tested by sampling, but failed" in str(err.value)


def test_at_a_boundary_point_reinforce_is_biased_and_assert_unbiased_says_by_how_much():
    """docs/examples/loops_h.yaml at p = 1: 'leave' has probability 0 but carries gradient; REINFORCE
    cannot see it.  Its exact bias (enumeration, 43/8) is reported, not 'unbiased by theory'."""
    from fractions import Fraction

    from pgverify.testing import BiasDetected, assert_unbiased

    case = pgverify.load_case(Path(__file__).parents[2] / "docs" / "examples" / "loops_h.yaml")

    def reinforce(ep):  # G times the summed score; only pi(.|S) depends on p: 1/p after stay
        p = ep.theta["p"]
        S = ep.state_names.index("S")
        stay = ep.action_names[S].index("stay")
        at_S = (ep.states == S) & ep.mask
        score = np.where(at_S & (ep.actions == stay), 1 / p, 0.0)
        score = np.where(at_S & (ep.actions != stay), -1 / (1 - p) if p != 1 else np.nan, score)
        return (score.sum(1) * np.where(ep.mask, ep.rewards, 0).sum(1))[:, None]

    with pytest.raises(BiasDetected) as err:
        assert_unbiased(reinforce, case, episodes=2_000)
    match = err.value.report.match
    assert match is not None and match.name == "reinforce"
    assert match.bias == [Fraction(43, 8)]
    assert "false alarm" not in str(err.value)
