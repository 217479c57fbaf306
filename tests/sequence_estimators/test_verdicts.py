"""The gradient verdicts and the cheap Jacobians: the unexpanded sum of outer products against a
dense computation, the softmax Hessian (minus the Fisher information) against sympy's, the
asymmetry found by the float64 screen against the whole exact J - J^T, the score-function
identities behind a "yes" at irrational points, and the exact wording of the report.

References: Williams (1992) for the score-function identity E_p[grad log p] = 0; Kool et al.
(2019) for RLOO; Nota & Thomas (2020), "Is the policy gradient a gradient?", for the symmetric
Jacobian test; Schulman et al. (2017) for the clipped surrogate.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import flint
import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from pgverify.casefile import load_case
from pgverify.sequence import estimators as est
from pgverify.sequence import numbers as nb
from pgverify.sequence.estimators import analyse, moments
from pgverify.sequence.objective import SequenceTables
from pgverify.sequence.report import render_text

from .helpers import make_case
from .test_enumeration import kl_case

R = sympy.Rational
CASES = Path(__file__).resolve().parents[2] / "cases"


def kl_reference():
    return load_case(str(CASES / "seq_kl_reference.yaml")).sequence


def softmax_kl_case(irrational: bool = False):
    """Two prompts, tabular softmax logits (at 0: rational; at theta_j = (j mod 5 - 2)/3: an
    irrational softmax), a reference, beta = 1/7, a stale point and clip 1/10."""
    ref = {"a": R(1, 2), "b": R(1, 3), "<eos>": R(1, 6)}
    point = {}

    def at(s):
        point.setdefault(s.name, R(len(point) % 5 - 2, 3) if irrational else 0)
        return point[s.name]

    return make_case(prompts=("x", "y"), max_length=2, point=at, reference=lambda x, p: ref, beta=R(1, 7),
                     old_point=lambda s: R(len(s.name) % 3, 4), clip_epsilon=R(1, 10),
                     reward=lambda x, o: (1 if o[0] == "a" else 0) if x == "x" else len(o) + (o[-1] == "b"))


# -- OuterSum --------------------------------------------------------------------------------------
def _no_hessian(tk):
    raise AssertionError("no Hessian in these sums")


fractions = st.fractions(min_value=-5, max_value=5, max_denominator=7)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(fractions, st.lists(fractions, min_size=3, max_size=3),
                          st.lists(fractions, min_size=3, max_size=3), st.booleans()), min_size=1, max_size=6))
def test_outer_sum_entries_dense_and_float_agree_with_numpy_outer(terms):
    J = nb.OuterSum(3, _no_hessian)
    direct = nb.zeros((3, 3))
    for c, a, b, ball in terms:
        c = flint.fmpq(c.numerator, c.denominator)
        a = np.array([flint.fmpq(x.numerator, x.denominator) for x in a], dtype=object)
        b = np.array([flint.fmpq(x.numerator, x.denominator) for x in b], dtype=object)
        with nb.working_precision():
            cc = flint.arb(c) if ball else c  # a ball coefficient makes the entries it reaches balls
        J.add_outer(cc, a, b)
        direct = direct + c * np.outer(a, b)
    with nb.working_precision():
        dense, anti = J.dense(), J.dense(antisymmetric=True)
        for i in range(3):
            for j in range(3):
                for got, want in ((dense[i, j], direct[i, j]), (J.entry(i, j), direct[i, j]),
                                  (anti[i, j], direct[i, j] - direct[j, i])):
                    if isinstance(got, flint.fmpq):
                        assert got == want
                    else:
                        assert (got - want).contains(0)
    f = J.float_matrix()
    np.testing.assert_allclose(f, np.array([[float(x) for x in row] for row in direct]), atol=1e-9)
    np.testing.assert_allclose(J.float_matrix(antisymmetric=True), f - f.T, atol=1e-9)


def test_outer_sum_keeps_entries_exact_where_no_ball_reaches_them():
    a = np.array([flint.fmpq(1), flint.fmpq(0)], dtype=object)
    b = np.array([flint.fmpq(0), flint.fmpq(2)], dtype=object)
    e = np.array([flint.fmpq(1), flint.fmpq(1)], dtype=object)
    J = nb.OuterSum(2, _no_hessian)
    with nb.working_precision():
        J.add_outer(flint.arb(2).sqrt(), a, b)  # reaches (0, 1) only
        J.add_outer(flint.fmpq(1, 3), e, e)
        d = J.dense()
    assert d[0, 0] == d[1, 0] == d[1, 1] == flint.fmpq(1, 3)
    assert not isinstance(d[0, 1], flint.fmpq) and (d[0, 1] - flint.fmpq(1, 3) - 2 * flint.arb(2).sqrt()).contains(0)


def test_structural_symmetry_needs_every_term_symmetric():
    a = np.array([flint.fmpq(1), flint.fmpq(2)], dtype=object)
    b = np.array([flint.fmpq(3), flint.fmpq(5)], dtype=object)
    J = nb.OuterSum(2, _no_hessian)
    J.add_outer(flint.fmpq(2), a, a)
    assert J.structurally_symmetric()
    J.add_outer(flint.fmpq(1, 2), a, b)
    assert not J.structurally_symmetric()
    J.add_outer(flint.fmpq(1, 2), b, a)  # its transpose, the same exact coefficient
    assert J.structurally_symmetric()
    with nb.working_precision():
        K = nb.OuterSum(2, _no_hessian)
        K.add_outer(flint.arb(2).sqrt(), a, b)
        K.add_outer(flint.arb(2).sqrt(), b, a)  # equal balls prove nothing
    assert not K.structurally_symmetric()


# -- the softmax Hessian ---------------------------------------------------------------------------
@pytest.mark.parametrize("irrational", [False, True])
def test_fisher_hessian_equals_sympys_hessian_of_log_pi(irrational):
    # -sum_b pi_b s_b s_b^T (linear logits) against d^2 pi / pi - s s^T from sympy's derivatives
    seq = softmax_kl_case(irrational)
    tb = SequenceTables(seq)
    assert tb.kind == ("ball" if irrational else "exact")
    n = tb.n
    checked = 0
    with nb.working_precision():
        for tk in list(tb.tokens.values())[:12]:
            kind, terms = tb.hessian_form(tk)
            assert kind == "outer"
            fisher = nb.zeros((n, n))
            for c, s in terms:
                fisher = fisher + c * np.outer(s, s)
            dense = tb.hessian(tk)
            for x, y in zip(fisher.flat, dense.flat):
                if irrational:
                    assert (x - y).contains(0)
                else:
                    assert x == y
            checked += 1
    assert checked == 12


def test_nonlinear_logits_use_sympys_hessian():
    seq = softmax_kl_case()
    th = seq.parameters[0]
    logits = {k: dict(v) for k, v in seq.logits.items()}
    key = next(iter(logits))
    tok = next(iter(logits[key]))
    logits[key][tok] = th ** 2
    z = sum(sympy.exp(v) for v in logits[key].values())
    policy = dict(seq.policy)
    policy[key] = {t: sympy.exp(v) / z for t, v in logits[key].items()}
    seq2 = replace(seq, logits=logits, policy=policy)
    tb = SequenceTables(seq2)
    assert not tb.softmax_linear(*key) and tb.softmax_linear(*next(k for k in logits if k != key))
    tk = tb._token(key[0], key[1], tok)
    assert tb.hessian_form(tk)[0] == "dense"


# -- the asymmetry screen --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["grpo+seq_mean", "rloo+seq_mean", "rloo+k3_loss", "grpo+token_mean"])
def test_screened_asymmetry_is_an_entry_of_the_whole_exact_jacobian(name):
    seq = kl_case()
    res = analyse(seq, [name], group=3, variance=False)
    er = res.estimators[name]
    assert er.is_gradient == "no"
    i, j, d = er.asymmetry
    jac = moments(seq, name, group=3, second=False, jacobian=True)["jacobian"]
    with nb.working_precision():
        full = jac[i, j] - jac[j, i]
        assert nb.certainly_nonzero(d)
        assert d == full if isinstance(d, flint.fmpq) else (d - full).contains(0)
    # the screen took the largest asymmetry
    D = np.array([[float(jac[a, b] - jac[b, a]) for b in range(len(jac))] for a in range(len(jac))])
    assert abs(float(d)) == pytest.approx(np.abs(D).max())


def test_clipped_estimators_have_a_symmetric_jacobian_with_its_reason():
    # samples from theta_old: the update is E_old[sum_t a_t grad rho_t] with coefficients free of
    # theta, so its Jacobian sum_t a_t rho_t (s_t s_t^T + H_t) is symmetric term by term
    res = analyse(kl_reference(), ["rloo+clip", "grpo+seq_mean+clip", "grpo+seq_mean+k3_loss+clip"], variance=False)
    for er in res.estimators.values():
        assert er.is_gradient == "undecided"
        assert er.gradient_reason == (
            "the Jacobian of the expected update is symmetric at this point (exactly: it is a sum of symmetric "
            "terms, outer products s s^T and Hessians of log pi, whatever the rounding of their coefficients); "
            "symmetry at one point does not prove a gradient")


def test_one_or_more_open_asymmetries_are_counted_in_words():
    a = np.array([flint.fmpq(1), flint.fmpq(2), flint.fmpq(0)], dtype=object)
    b = np.array([flint.fmpq(3), flint.fmpq(5), flint.fmpq(1)], dtype=object)
    with nb.working_precision():
        c = flint.arb(2).sqrt()
        J = nb.OuterSum(3, _no_hessian)
        J.add_outer(c, a, b)
        J.add_outer(c, b, a)  # symmetric, but not provably from balls
        (v, _, why), open_pairs = est._symmetry_verdict(J, est.EstimatorResult("x", "ok"), ["u", "v", "w"])
    assert v == "undecided" and len(open_pairs) == 3
    assert why == "3 Jacobian asymmetries are within their balls' radius of 0; balls cannot prove symmetry"
    e = np.array([flint.fmpq(0), flint.fmpq(0), flint.fmpq(1)], dtype=object)
    with nb.working_precision():
        K = nb.OuterSum(3, _no_hessian)
        K.add_outer(c, e, b)
        K.add_outer(c, b, e)
        K.add_outer(flint.fmpq(1), a, a)
        (v, _, why), open_pairs = est._symmetry_verdict(K, est.EstimatorResult("x", "ok"), ["u", "v", "w"])
    # (0, 2) and (1, 2) are reached by the ball terms; (0, 1) only by exact ones: exactly 0
    assert why == "2 Jacobian asymmetries are within their balls' radius of 0; balls cannot prove symmetry"
    with nb.working_precision():
        L = nb.OuterSum(2, _no_hessian)
        L.add_outer(c, a[:2], b[:2])
        L.add_outer(c, b[:2], a[:2])
        (v, _, why), open_pairs = est._symmetry_verdict(L, est.EstimatorResult("x", "ok"), ["u", "v"])
    assert why == "1 Jacobian asymmetry is within its ball's radius of 0; balls cannot prove symmetry"
    assert open_pairs == [(0, 1)]


def test_open_asymmetries_are_tried_again_at_higher_precision(monkeypatch):
    # pretend the default balls left the decided entries open: the entries are computed again from
    # tables at 320 bits, and a real asymmetry is then proved there
    real = est._symmetry_verdict

    def open_everything(jac, res, names):
        real(jac, res, names)
        n = jac.n
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)][:est.RAISE_PRECISION_ENTRIES]
        return ("undecided", None, "open"), pairs

    monkeypatch.setattr(est, "_symmetry_verdict", open_everything)
    er = analyse(softmax_kl_case(True), ["grpo+seq_mean"], group=3, variance=False).estimators["grpo+seq_mean"]
    assert er.is_gradient == "no" and er.gradient_reason.endswith("; decided with 320-bit balls")
    # a symmetric Jacobian whose entries are balls stays open up to the limit, and the reason says so
    er = analyse(kl_reference(), ["rloo+clip"], group=3, variance=False).estimators["rloo+clip"]
    assert er.is_gradient == "undecided"
    assert er.gradient_reason == f"open (also with {est.MAX_BALL_PREC}-bit balls)"


# -- identities ------------------------------------------------------------------------------------
def test_k1_reward_and_kl_score_are_unbiased_by_identity_at_an_irrational_point():
    res = analyse(kl_reference(), ["rloo+k1_reward", "rloo+kl_score"], variance=False)
    for name, er in res.estimators.items():
        # the numbers alone leave it open: every bias coordinate is a ball around 0
        with nb.working_precision():
            assert all(not nb.certainly_nonzero(b) and not isinstance(b, flint.fmpq) for b in er.bias)
        assert er.is_gradient == "yes" and er.objective == "J" and er.bias_identity == er.gradient_reason
        d = er.to_dict()
        assert d["relative_bias_zero"] == "identity" and 0 < d["relative_bias_bound"] < 1e-40
    assert res.estimators["rloo+k1_reward"].gradient_reason == (
        "by identity, for every theta: the advantage is linear in the rewards and u = sigma, so "
        "E[g] = E_p[R sigma] - beta * E_p[log(p/p_ref) sigma] = grad J; E_p[sigma] = grad sum_o p(o|x) = 0 for "
        "every theta (a softmax at every context); the k1 penalty sums to log(p(o)/p_ref(o)) over the tokens; "
        "E_p[log(p/p_ref) sigma] = grad KL (score function); the mean computed at the point agrees with this form")
    kl = res.estimators["rloo+kl_score"].to_dict()["kl_part"]
    assert kl["missing_relative_zero"] == "identity" and kl["missing_relative_bound"] < 1e-40
    text = render_text(res)
    assert "rloo+k1_reward  0 (identity)" in text
    assert "  KL term: the missing part (target - expected) has relative norm 0 (identity)\n" in text


def test_identity_objectives_of_scaled_and_partial_estimators():
    # at an irrational point the exact checks cannot decide; the identity names a E[R] - m beta KL
    # (a = c G alpha, m = c G for kl_score, c G alpha for k1_reward, 0 for k1_loss), and that
    # form is checked here against the objective's own gradients
    seq = softmax_kl_case(True)
    names = ["dr_grpo+kl_score", "rloo+max_len+kl_score", "reinforce+k1_loss", "dr_grpo+k1_reward",
             "rloo+seq_mean+kl_score"]
    res = analyse(seq, names, group=4, variance=False)
    got = {n: (e.is_gradient, e.objective) for n, e in res.estimators.items()}
    assert got == {"dr_grpo+kl_score": ("yes", "(3/4) * E[R] - beta * KL"),
                   "rloo+max_len+kl_score": ("yes", "(1/2) * J"),
                   "reinforce+k1_loss": ("yes", "E[R]"),
                   "dr_grpo+k1_reward": ("yes", "(3/4) * J"),
                   # u = sigma / |o|: no identity, the Jacobian decides
                   "rloo+seq_mean+kl_score": ("no", None)}
    obj = res.objective
    beta = flint.fmpq(1, 7)
    with nb.working_precision():
        want = {"dr_grpo+kl_score": 3 * obj.grad_reward / 4 - beta * obj.grad_kl,
                "rloo+max_len+kl_score": (obj.grad_reward - beta * obj.grad_kl) / 2,
                "reinforce+k1_loss": obj.grad_reward,
                "dr_grpo+k1_reward": 3 * (obj.grad_reward - beta * obj.grad_kl) / 4}
        for n, w in want.items():
            assert all((m - x).contains(0) for m, x in zip(res.estimators[n].mean, w)), n
    # only an unscaled J proves the bias 0
    assert [n for n in names if res.estimators[n].bias_identity] == []


def test_a_bias_balls_cannot_prove_zero_is_shown_as_zero_within_its_bound():
    # theta_old shifts every logit of a context by the same 1/10: the same softmax, so the ratios
    # are exactly 1 and rloo+clip is RLOO; the ratios are balls, and no identity covers clipping
    seq = make_case(prompts=("x", "y"), max_length=2, old_point=lambda s: R(1, 10), clip_epsilon=R(1, 5),
                    reward=lambda x, o: (o[0] == "a") + (x == "y") * len(o))
    res = analyse(seq, ["rloo+clip"], group=3, variance=False)
    er = res.estimators["rloo+clip"]
    assert er.is_gradient == "undecided"
    assert er.gradient_reason.startswith("every coordinate of the bias is within ")
    assert er.gradient_reason.endswith(" of 0 (certified balls): consistent with grad J, but balls cannot prove "
                                       "the equality")
    d = er.to_dict()
    assert d["relative_bias_zero"] == "within_bound" and d["bias_identity"] is None
    assert 0 < d["relative_bias_float"] <= d["relative_bias_bound"] < 1e-40
    assert f"rloo+clip  0 (within {d['relative_bias_bound']:.2g})" in render_text(res)


def test_exact_and_nonzero_relative_biases_keep_their_form():
    res = analyse(kl_case(), ["rloo", "grpo+seq_mean"], group=3, variance=False, jacobian=False)
    assert res.estimators["rloo"].to_dict()["relative_bias_zero"] == "no"  # RLOO ignores the KL term
    d = res.estimators["grpo+seq_mean"].to_dict()
    assert d["relative_bias_zero"] == "no" and d["relative_bias_bound"] >= d["relative_bias_float"] > 0
    from .test_enumeration import two_prompt_case

    res = analyse(two_prompt_case(), ["rloo"], group=3, variance=False, jacobian=False)
    d = res.estimators["rloo"].to_dict()
    assert d["relative_bias"] == "0" and d["relative_bias_zero"] == "exact" and d["relative_bias_bound"] == 0
    assert "\nrloo       0              " in render_text(res)


def test_identity_for_explicit_probabilities_that_sum_to_one_symbolically():
    # pi(a) = th_a, pi(b) = th_b, pi(eos) = 1 - th_a - th_b: not a softmax, but the sum is 1 for
    # every theta, which the tool checks symbolically before it uses E_p[sigma] = 0
    er = analyse(kl_case(), ["rloo+k1_reward"], group=3, variance=False).estimators["rloo+k1_reward"]
    assert er.is_gradient == "yes" and er.objective == "J"
    assert "(every context's probabilities sum to 1 symbolically)" in er.gradient_reason
    seq = kl_case()
    key = next(iter(seq.policy))
    bad = dict(seq.policy)
    bad[key] = {**seq.policy[key], "<eos>": seq.policy[key]["<eos>"] + seq.parameters[0] ** 2}  # sums to 1 + th^2
    assert est._sums_to_one(replace(seq, policy=bad), SequenceTables(seq)) is None


def test_a_constant_update_is_said_as_such_by_the_monte_carlo_check():
    # one reward for every completion: RLOO's advantages are all 0, every batch gives the update 0,
    # so every coordinate has exact variance 0 and no statistical test applies
    seq = make_case(prompts=("x",), max_length=2, reward=lambda x, o: 1)
    res = analyse(seq, ["rloo", "reinforce"], group=3, mc={"batches": 200, "seed": 1})
    er = res.estimators["rloo"]
    assert all(v == 0 for v in er.variance)
    assert er.monte_carlo["verdict"] == "consistent"
    assert er.monte_carlo["reason"] == (
        "every coordinate has exact variance 0 (the update is the same for every batch), so no statistical test "
        "applies: the sample mean equals the exact mean to float64 rounding (within 1e-9 of the largest sampled "
        "update)")
    text = render_text(res)
    assert "consistent (constant update)" in text.split("\nrloo ")[1].splitlines()[0]
    assert "  Monte Carlo: consistent: every coordinate has exact variance 0" in text
    # REINFORCE's update varies with the batch: a plain "consistent"
    assert text.split("\nreinforce ")[1].splitlines()[0].rstrip().endswith("consistent")
