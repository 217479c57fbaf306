"""The KL estimators of Schulman (2020) differentiated as losses, against independent computations.

References: J. Schulman (2020), "Approximating KL divergence" (k1 = log r^-1, k2, k3 with
r = pi_ref/pi); Y. Tang and R. Munos (2025), "On a few pitfalls in KL divergence gradient
estimation for RL": differentiating k1 as a loss has expected gradient 0, k2 gives the gradient
of KL(pi || pi_ref), k3 the gradient of the forward KL(pi_ref || pi); on sequences the
token-level losses give partial gradients (the future KL terms are missing).
"""
from __future__ import annotations

import flint
import pytest
import sympy

from pgverify.sequence import numbers as nb
from pgverify.sequence.estimators import analyse, moments

from .brute import completion_table
from .helpers import make_case

R = sympy.Rational
REF = {"a": R(1, 4), "b": R(1, 4), "<eos>": R(1, 2)}
BETA = R(1, 2)


def single_step():
    pt = {"th_x_0_a": R(1, 2), "th_x_0_b": R(1, 3)}
    return make_case(max_length=1, form="direct", point=lambda s: pt[s.name], reference=lambda x, p: REF, beta=BETA)


def contains(ball, value: sympy.Expr) -> bool:
    """The ball (or rational) holds the real number value (evaluated by sympy to 60 digits)."""
    with nb.working_precision():
        v = flint.arb(str(sympy.N(value, 60)), flint.arb("1e-50"))
        return (ball - v).contains(0) if not isinstance(ball, flint.fmpq) else (flint.arb(ball) - v).contains(0)


def kl_part(seq, name):
    return moments(seq, name, group=1)["kl_part"]


def test_k1_as_a_loss_has_expected_gradient_zero():
    # Tang & Munos 2025: E_pi[grad log(pi/pi_ref)] = E_pi[grad log pi] = 0
    part = kl_part(single_step(), "reinforce+k1_loss")
    assert nb.is_exact(part) and all(v == 0 for v in part)


def test_k2_as_a_loss_gives_the_gradient_of_kl_pi_ref():
    seq = single_step()
    th = seq.parameters
    pi = seq.policy[("x", ())]
    kl = sum(pi[t] * sympy.log(pi[t] / REF[t]) for t in pi)  # KL(pi || pi_ref), by sympy
    part = kl_part(seq, "reinforce+k2_loss")
    for j, p in enumerate(th):
        assert contains(part[j], -BETA * sympy.diff(kl, p).subs(seq.point))
    # and not the forward KL's gradient
    fwd = sum(REF[t] * sympy.log(REF[t] / pi[t]) for t in pi)
    assert not contains(part[0], -BETA * sympy.diff(fwd, th[0]).subs(seq.point))


def test_k3_as_a_loss_gives_the_gradient_of_the_forward_kl():
    seq = single_step()
    pi = seq.policy[("x", ())]
    fwd = sum(REF[t] * sympy.log(REF[t] / pi[t]) for t in pi)  # KL(pi_ref || pi)
    rev = sum(pi[t] * sympy.log(pi[t] / REF[t]) for t in pi)
    part = kl_part(seq, "reinforce+k3_loss")
    assert nb.is_exact(part)  # grad k3 = (1 - pi_ref/pi) s is rational here
    expected = [sympy.diff(fwd, p).subs(seq.point) for p in seq.parameters]
    assert [sympy.Rational(int(v.p), int(v.q)) for v in part] == [-BETA * sympy.nsimplify(e) for e in expected]
    # the report shows the missing part: target (reverse KL's gradient) minus what k3 gives
    res = analyse(seq, ["reinforce+k3_loss"], group=1, jacobian=False)
    missing = res.estimators["reinforce+k3_loss"].kl_part["missing"]
    for j, p in enumerate(seq.parameters):
        assert contains(missing[j], -BETA * (sympy.diff(rev, p) - sympy.diff(fwd, p)).subs(seq.point))
    assert any(nb.certainly_nonzero(m) for m in missing)


def sequence_case():
    pt = {"th_x_0_a": R(1, 2), "th_x_0_b": R(1, 3), "th_x_a_a": R(1, 5), "th_x_b_b": R(2, 3), "th_x_ab_a": R(1, 7)}
    return make_case(max_length=3, form="direct", point=lambda s: pt.get(s.name, R(1, 4)),
                     reference=lambda x, p: REF, beta=BETA, reward=lambda x, o: len(o))


def test_token_level_k2_loss_misses_the_future_kl_terms():
    # the missing part is -beta E[sum_t s_t sum_{u > t} l_u], computed here from sympy's scores
    seq = sequence_case()
    rows = completion_table(seq)["x"]
    n = len(seq.parameters)
    with nb.working_precision():
        future = nb.zeros(n)
        for rw in rows:
            ls = [nb.log(tk["pi"] / tk["ref"]) for tk in rw["toks"]]
            for t, tk in enumerate(rw["toks"]):
                future = future + (rw["p"] * sum(ls[t + 1:], nb.ZERO)) * tk["s"]
        res = analyse(seq, ["reinforce+k2_loss"], group=1, jacobian=False)
        missing = res.estimators["reinforce+k2_loss"].kl_part["missing"]
        for m, f in zip(missing, future):
            d = m - (-flint.fmpq(1, 2)) * f
            assert d.contains(0) and float(d.rad()) < 1e-30
        assert any(nb.certainly_nonzero(m) for m in missing)


def test_token_level_k3_loss_is_the_forward_kl_per_prefix_with_the_prefixes_held_fixed():
    # E[sum_t grad k3_t] = sum over prefixes h of P(h) * (-sum_a pi_ref(a|h) grad log pi(a|h)):
    # the gradient of sum_h P(h) KL(pi_ref(.|h) || pi(.|h)) with P(h) held fixed (exact here)
    seq = sequence_case()
    n = len(seq.parameters)
    expected = nb.zeros(n)
    for h in seq.prefixes("x"):
        P = sympy.Integer(1)
        for t in range(len(h)):
            P *= seq.policy[("x", h[:t])][h[t]]
        P = P.xreplace(seq.point)
        for a, e in seq.policy[("x", h)].items():
            for j, th in enumerate(seq.parameters):
                v = -P * REF[a] * sympy.diff(sympy.log(e), th).xreplace(seq.point)
                expected[j] += flint.fmpq(int(v.p), int(v.q))
    part = kl_part(seq, "reinforce+k3_loss")
    assert list(part) == list(-flint.fmpq(1, 2) * expected)


def test_kl_score_and_k1_reward_are_unbiased_for_the_kl_gradient():
    # score-function form: E[sigma log(p/p_ref)] = grad KL exactly; k1 as a reward with RLOO too
    seq = sequence_case()
    res = analyse(seq, ["reinforce+kl_score", "rloo+k1_reward", "rloo+k3_reward"], group=3, jacobian=False)
    for name in ("reinforce+kl_score", "rloo+k1_reward"):
        er = res.estimators[name]
        assert er.proof == "certified"
        with nb.working_precision():
            assert all(b.contains(0) and float(b.rad()) < 1e-30 for b in er.bias)
    # k3 in the reward is biased (its expectation is the KL, its score-weighted form is not)
    assert any(nb.certainly_nonzero(b) for b in res.estimators["rloo+k3_reward"].bias)


def test_kl_terms_need_a_reference():
    seq = make_case(max_length=1, form="direct")
    from pgverify.errors import UsageError

    with pytest.raises(UsageError, match=r"estimator 'rloo\+k3_loss' has a KL term but case 'test' has no KL"):
        moments(seq, "rloo+k3_loss", group=2)
