"""Known exact means: RLOO and the exact baseline are unbiased (Kool et al. 2019; Williams 1992),
Dr. GRPO's mean-centred advantage is (G-1)/G times RLOO's sample by sample (Liu et al. 2025), and
the gradient verdicts that follow from them; the Jacobian against sympy's Hessian and finite
differences."""
from __future__ import annotations

import math

import flint
import numpy as np
import pytest
import sympy

from pgverify.errors import UsageError
from pgverify.sequence import numbers as nb
from pgverify.sequence.estimators import MULTISET_LIMIT, analyse, moments, parse_estimator
from pgverify.sequence.objective import objective

from .test_enumeration import two_prompt_case

R = sympy.Rational


@pytest.fixture(scope="module")
def case():
    return two_prompt_case()


@pytest.mark.parametrize("G", [2, 3, 8])
def test_rloo_and_the_exact_baseline_are_unbiased(case, G):
    res = analyse(case, ["rloo", "reinforce_baseline", "reinforce", "rloo+max_len"], group=G, jacobian=False)
    for name in ("rloo", "reinforce_baseline", "reinforce"):
        er = res.estimators[name]
        assert er.proof == "exact" and all(b == 0 for b in er.bias)
        assert er.is_gradient == "yes" and er.objective == "J"
    grad = res.objective.gradient
    assert list(res.estimators["rloo+max_len"].mean) == [g / case.max_length for g in grad]


@pytest.mark.parametrize("G", [2, 4, 8])
def test_dr_grpo_sum_is_g_minus_1_over_g_times_the_gradient(case, G):
    res = analyse(case, ["dr_grpo", "dr_grpo+max_len"], group=G, jacobian=False)
    grad = res.objective.gradient
    c = flint.fmpq(G - 1, G)
    assert list(res.estimators["dr_grpo"].mean) == [c * g for g in grad]
    assert res.estimators["dr_grpo"].is_gradient == "yes"
    assert res.estimators["dr_grpo"].objective == f"({c}) * J"
    assert list(res.estimators["dr_grpo+max_len"].mean) == [c / case.max_length * g for g in grad]


def sympy_J(case):
    """J = sum_x rho(x) sum_o p(o|x) R(x, o) written out in sympy."""
    J = 0
    for x in case.prompts:
        for o in case.completions(x):
            p = sympy.Integer(1)
            for t in range(len(o)):
                p *= case.policy[(x, o[:t])][o[t]]
            J += case.prompt_probs[x] * p * case.reward[(x, o)]
    return J


def test_objective_gradient_against_sympy(case):
    J = sympy_J(case)
    obj = objective(case)
    assert obj.kind == "exact"
    assert str(obj.value) == str(sympy.nsimplify(J.xreplace(case.point)))
    assert [str(g) for g in obj.gradient] == [str(sympy.diff(J, th).xreplace(case.point)) for th in case.parameters]


def test_jacobian_of_reinforce_is_the_hessian_of_j(case):
    J = sympy_J(case)
    jac = moments(case, "reinforce", group=3, second=False, jacobian=True)["jacobian"]
    th = case.parameters
    for i, a in enumerate(th):
        for j, b in enumerate(th):
            assert str(jac[i, j]) == str(sympy.diff(J, a, b).xreplace(case.point))


@pytest.mark.parametrize("name", ["grpo+seq_mean", "rloo+seq_mean", "dr_grpo+token_mean", "grpo+seq_mean+clip",
                                  "rloo+k3_loss", "reinforce_baseline+seq_mean", "rloo+k2_reward", "rloo+kl_score",
                                  "dr_grpo+seq_mean+k2_loss", "reinforce_baseline+max_len+clip"])
def test_jacobian_against_finite_differences(name):
    from .test_enumeration import kl_case

    seq = kl_case()
    G = 3
    jac = moments(seq, name, group=G, second=False, jacobian=True)["jacobian"]
    h = R(1, 10**7)
    from dataclasses import replace

    for j, p in enumerate(seq.parameters):
        up = replace(seq, point={**seq.point, p: seq.point[p] + h})
        dn = replace(seq, point={**seq.point, p: seq.point[p] - h})
        fd = (np.array([nb.as_float(v) for v in moments(up, name, group=G, second=False)["mean"]])
              - np.array([nb.as_float(v) for v in moments(dn, name, group=G, second=False)["mean"]])) / (2e-7)
        col = np.array([nb.as_float(jac[i, j]) for i in range(len(seq.parameters))])
        np.testing.assert_allclose(fd, col, rtol=1e-5, atol=1e-6)


def test_verdicts_are_backed_by_the_jacobian():
    # a "no" names an entry whose asymmetry is certainly non-zero; check it against finite differences
    from .test_enumeration import kl_case

    seq = kl_case()
    res = analyse(seq, ["grpo+seq_mean", "rloo+seq_mean", "rloo+k3_loss"], group=3)
    for name, er in res.estimators.items():
        assert er.is_gradient in ("yes", "no", "undecided")
        if er.is_gradient == "no":
            assert "asymmetric" in er.gradient_reason


def test_group_normalised_binary_rewards_are_a_gradient():
    # two reward values per prompt: the expected update is phi(q) grad q per prompt (a proof for
    # every theta); here its Jacobian at the point is checked to be symmetric independently
    seq = two_prompt_case()
    seq2 = type(seq)(**{**seq.__dict__, "reward": {k: (1 if v >= 2 else 0) if k[0] == "y" else v
                                                     for k, v in seq.reward.items()}})
    res = analyse(seq2, ["grpo", "grpo_sample_std+max_len", "grpo+seq_mean"], group=4)
    for name in ("grpo", "grpo_sample_std+max_len"):
        assert res.estimators[name].is_gradient == "yes"
        assert "at most two values" in res.estimators[name].gradient_reason
        jac = moments(seq2, name, group=4, second=False, jacobian=True)["jacobian"]
        with nb.working_precision():
            d = jac - jac.T
            assert all(x.contains(0) and float(x.rad()) < 1e-30 for x in d.flat)
    # the argument needs u = sigma: under seq_mean the tool decides from the Jacobian
    assert "at most two values" not in res.estimators["grpo+seq_mean"].gradient_reason


def test_multiset_limit_gives_not_run_with_the_count():
    from .test_enumeration import kl_case

    seq = kl_case()
    res = analyse(seq, ["grpo+k1_reward"], group=8, multiset_limit=100, jacobian=False)
    er = res.estimators["grpo+k1_reward"]
    assert er.status == "not_run"
    # penalised rewards are balls, one type per completion: 7 per prompt, C(7 + 8 - 1, 8) multisets each
    assert er.reason == f"{2 * math.comb(14, 8)} multisets of group types to enumerate, beyond the limit of 100"
    # the default limit leaves it to run
    assert analyse(seq, ["grpo+k1_reward"], group=8, jacobian=False).estimators["grpo+k1_reward"].status == "ok"
    assert 2 * math.comb(14, 8) < MULTISET_LIMIT


def test_eps_is_exact_and_checked():
    seq = two_prompt_case()
    a = analyse(seq, ["grpo"], group=3, eps="1/10000", jacobian=False, variance=False)
    b = analyse(seq, ["grpo"], group=3, eps=flint.fmpq(1, 10000), jacobian=False, variance=False)
    c = analyse(seq, ["grpo"], group=3, eps="1e-4", jacobian=False, variance=False)
    assert a.eps == b.eps == c.eps == flint.fmpq(1, 10000)
    with nb.working_precision():
        assert all((x - y).contains(0) for x, y in zip(a.estimators["grpo"].mean, b.estimators["grpo"].mean))
    with pytest.raises(UsageError, match=r"^GRPO's eps must be a rational number such as 1/1000000 or 1e-6 \(given 'x'\)$"):
        analyse(seq, ["grpo"], group=3, eps="x")


def test_estimator_names_are_checked():
    with pytest.raises(UsageError, match=r"^unknown estimator 'ppo': 'ppo' is not an advantage"):
        parse_estimator("ppo")
    with pytest.raises(UsageError, match=r"^unknown or repeated part 'sum' in estimator 'rloo\+sum\+sum'"):
        parse_estimator("rloo+sum+sum")
    with pytest.raises(UsageError, match=r"^estimator 'rloo\+k1_reward\+clip': with clip only the KL loss terms"):
        parse_estimator("rloo+k1_reward+clip")
    with pytest.raises(UsageError, match=r"^estimator 'rloo' needs a group of at least 2 completions \(given 1\)"):
        analyse(two_prompt_case(), ["rloo"], group=1)


def test_irrational_softmax_point_gives_certified_results():
    # softmax logits at theta = 1/2, 1/3, ...: the policy is irrational, every number is a ball;
    # RLOO's bias is certified to within its bound of 0, and proved 0 by the score-function
    # identity (E_p[sigma] = 0 for a softmax), which the verdict names
    from .helpers import make_case

    vals = {}

    def point(s):
        vals.setdefault(s.name, R(len(vals) % 4 + 1, 3) - 1)
        return vals[s.name]

    seq = make_case(prompts=("x", "y"), max_length=2, point=point, old_point=lambda s: 0, clip_epsilon=R(1, 5),
                    reward=lambda x, o: (o[0] == "a") + (x == "y") * len(o))
    res = analyse(seq, ["rloo", "grpo+seq_mean", "rloo+clip"], group=4, mc={"batches": 4000})
    assert res.objective.kind == "certified" and 0 < res.objective.bound < 1e-12
    er = res.estimators["rloo"]
    assert er.proof == "certified"
    with nb.working_precision():
        assert all(b.contains(0) and float(b.rad()) < 1e-30 for b in er.bias)
    assert er.is_gradient == "yes" and er.objective == "J" and er.gradient_reason.startswith("by identity")
    assert er.bias_identity == er.gradient_reason and er.to_dict()["relative_bias_zero"] == "identity"
    assert res.monte_carlo["consistent"]
