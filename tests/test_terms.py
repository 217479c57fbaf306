"""The gradient's families: each is the derivative of J with only that ingredient depending on theta,
and the two kinds of zero (pointwise, in expectation) are told apart on the three textbook cases."""
import pytest
import sympy

import pgverify

from .conftest import CASE_FILES, CASES

FAMS = ("start", "policy", "dynamics", "reward", "discount")


def freeze_all_but(case, keep):
    """The case with every ingredient except ``keep`` frozen at its value at the point."""
    pt = case.point

    def fz(e, family):
        return e if family == keep else e.xreplace(pt)

    return case.with_(
        rho0={s: fz(e, "start") for s, e in case.rho0.items()},
        pi={s: {a: fz(e, "policy") for a, e in row.items()} for s, row in case.pi.items()},
        P={s: {a: {s2: fz(e, "dynamics") for s2, e in row.items()} for a, row in acts.items()}
           for s, acts in case.P.items()},
        r={s: {a: {s2: fz(e, "reward") for s2, e in row.items()} for a, row in acts.items()}
           for s, acts in case.r.items()},
        gamma=fz(case.gamma, "discount"),
        mu=None, P_of_a=None, r_of_a=None,  # the frozen copy is an ordinary MDP: no DPG comparison
    )


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_each_family_is_the_derivative_with_the_others_frozen(path):
    """An independent computation of every family: freeze the other ingredients, differentiate J."""
    case = pgverify.load_case(path)
    res = pgverify.check(case)
    total = {p: sympy.Integer(0) for p in case.parameter_names}
    for f in FAMS:
        frozen = pgverify.check(freeze_all_but(case, f), mode="at-point", engines=("bellman", "occupancy"))
        assert frozen.verified
        for p in case.parameter_names:
            expected = frozen.gradient[p]
            got = res.terms[f].contribution[p] if f in res.terms else None
            if got is None:  # discount is only reported when gamma depends on theta
                assert expected.float == 0.0
                continue
            assert abs(sympy.Float(got["float"]) - sympy.Float(expected.float)) <= 1e-12 * max(1, abs(expected.float))
            if got["value"] is not None and expected.value is not None:
                assert sympy.N(sympy.sympify(got["value"]) - sympy.sympify(expected.value), 40) == 0 or \
                    abs(sympy.N(sympy.sympify(got["value"]) - sympy.sympify(expected.value), 40)) < 1e-35
            total[p] += sympy.Float(expected.float, 30)
    for p in case.parameter_names:  # the frozen derivatives add up to the gradient
        assert abs(total[p] - sympy.Float(res.gradient[p].float, 30)) <= 1e-12 * max(1, abs(res.gradient[p].float))


def test_short_corridor_only_the_policy_family_remains():
    res = pgverify.check(CASES / "short_corridor.yaml")
    assert [f for f, t in res.terms.items() if not t.pointwise_zero] == ["policy"]
    assert res.terms["policy"].contribution["p"]["value"] == "8"
    assert res.score_function_misses["p"].value == "0"


def test_entropy_bonus_reward_family_vanishes_in_expectation_not_pointwise():
    res = pgverify.check(CASES / "entropy_bonus.yaml")
    reward = res.terms["reward"]
    assert not reward.pointwise_zero and reward.witness.startswith("d r(S,a,done)/dt1")
    assert all(c["identically_zero"] for c in reward.contribution.values())
    assert "sum_a pi(a|s) grad log pi(a|s) = grad sum_a pi(a|s) = grad 1 = 0" in reward.identity
    assert not res.terms["policy"].pointwise_zero
    assert not any(c["identically_zero"] for c in res.terms["policy"].contribution.values())
    assert res.terms["start"].pointwise_zero and res.terms["dynamics"].pointwise_zero


def test_deterministic_policy_dynamics_and_reward_carry_the_gradient():
    res = pgverify.check(CASES / "deterministic_policy.yaml")
    assert res.terms["policy"].pointwise_zero  # no score function exists
    for f in ("dynamics", "reward"):
        assert not res.terms[f].pointwise_zero
        assert not any(c["identically_zero"] for c in res.terms[f].contribution.values())
    for p in ("k", "c"):  # the score-function formula misses the whole gradient
        missed, grad = res.score_function_misses[p], res.gradient[p]
        assert missed.float == grad.float and missed.value == grad.value


def test_json_terms_fields():
    d = pgverify.check(CASES / "entropy_bonus.yaml").to_dict()
    assert set(d["terms"]) == {"start", "policy", "dynamics", "reward"}
    c = d["terms"]["reward"]["contribution"]["t1"]
    assert d["terms"]["reward"]["pointwise_zero"] is False
    assert {"expression", "identically_zero", "float"} <= set(c) and c["identically_zero"] is True


def test_deterministic_policy_gradient_is_computed_and_checked():
    """Silver et al. (2014), Theorem 1: with rho0 and gamma fixed and theta acting only through
    a = mu(s), sum_s d(s) grad mu(s) dQ/da equals the whole gradient (closed form of the case in
    tests/reference/test_reference_values.py)."""
    res = pgverify.check(CASES / "deterministic_policy.yaml")
    assert res.dpg_check == {"equals": "dynamics + reward families", "agree": True, "proof": "symbolic",
                             "max_difference": 0.0, "differences": {"k": 0.0, "c": 0.0}, "failed": []}
    for p in ("k", "c"):
        assert sympy.cancel(res.dpg[p].sympy_expression - res.gradient[p].sympy_expression) == 0
    assert pgverify.check(CASES / "short_corridor.yaml").dpg == {}


def test_dpg_not_compared_when_theta_enters_the_dynamics_directly(tmp_path):
    path = tmp_path / "direct.yaml"
    path.write_text("name: direct\nparameters: {k: 1/2}\nstates: [S, G, F]\nterminal: [G, F]\nstart: S\n"
                    "policy: {deterministic: {S: k}}\ntransitions: {S: {G: 'k*sigmoid(a)', F: '1 - k*sigmoid(a)'}}\n"
                    "rewards: {S: {G: 1}}\n")
    res = pgverify.check(path)
    assert res.verified and res.dpg and res.dpg_check is None
    # here the DPG misses the direct dependence: it is not the whole gradient
    assert res.dpg["k"].float != res.gradient["k"].float
