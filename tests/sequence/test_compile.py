r"""A sequence case compiles to the finite MDP whose J is the sequence objective, exactly.

The reference values are computed here, independently of pgverify.sequence: the completions are
enumerated with itertools, and at theta = 0 every logit ``c*w`` is 0, so the softmax policy is
uniform over the vocabulary (Sutton & Barto 2018, eq. 13.2: pi(a) = e^0 / sum_b e^0 = 1/|V|); a
completion o then has probability |V|^-|o|.  With reference logits log(q_t), pi_ref(t) = q_t / sum q
(exp(log q) = q), so the KL of the two sequence distributions (a finite sum; Cover & Thomas 2006,
eq. 2.26) is exact in rationals and logs of rationals.  The gradient at theta = 0 is the
score-function form d/dw sum_o p(o) f(o) = sum_o p(o) (d log p(o)/dw) f(o) with
f = R - beta log(p/p_ref) (the term sum_o p(o) d log p(o)/dw = d/dw 1 = 0 drops; Williams 1992),
and d log pi(t)/dw = c_t - mean(c) for logits c_t w at w = 0.
"""
from __future__ import annotations

import itertools
import json
import re
from fractions import Fraction

import pytest
import sympy
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgverify
from pgverify.cli import main
from pgverify.sequence.compile import TERMINAL, sequence_to_case

from ..conftest import CASES

SEQUENCE_CASES = sorted(CASES.glob("seq_*.yaml"))


def completions(body, eos, max_length):
    """Every completion: tokens of ``body`` then eos, or max_length tokens of ``body``."""
    out = []
    for k in range(max_length):
        out += [o + (eos,) for o in itertools.product(body, repeat=k)]
    out += list(itertools.product(body, repeat=max_length))
    return out


def exact_zero(e) -> bool:
    """e == 0 exactly, for sums of rationals times logs of rationals (logs split into primes)."""
    return sympy.expand(sympy.expand_log(sympy.expand(e), force=True, factor=True)) == 0


def same(q, exact) -> bool:
    """pgverify's quantity ``q`` is ``exact``: exactly, or to 45 digits when pgverify gives only its
    value to 50 digits (a large irrational element: its exact form is not built, see
    ``Algebra.at_point``)."""
    if q.sympy_value is not None:
        return exact_zero(q.sympy_value - exact)
    return abs(sympy.Float(q.digits, 50) - sympy.N(exact, 60)) <= sympy.Float("1e-45") * max(1, abs(q.float))


def objective_and_gradient(spec):
    """J and dJ/dw at w = 0 by enumeration (see the module docstring), from the test's own spec.

    ``spec["coef"]`` maps a token to c (its logit is c*w), or a prompt to such a map.
    """
    body, eos, L = spec["body"], "eos", spec["max_length"]
    vocab = body + [eos]
    n = len(vocab)
    q = spec["ref"] or {}  # token -> positive integer weight of pi_ref (unused when beta = 0)
    Q = sum(q.get(t, 1) for t in vocab)
    beta = spec["beta"]
    J, dJ = sympy.Integer(0), sympy.Integer(0)
    for x, rho in spec["prompts"].items():
        coef = spec["coef"].get(x, {}) if x in spec["coef"] else spec["coef"]
        cbar = Fraction(sum(coef.get(t, 0) for t in vocab), n)
        for o in completions(body, eos, L):
            p = sympy.Rational(1, n**len(o))
            p_ref = sympy.Integer(1)
            for t in o:
                p_ref *= sympy.Rational(q.get(t, 1), Q)
            R = sympy.Rational(spec["reward"].get((x, o), 0))
            f = R - beta * sympy.log(p / p_ref)
            score = sum(Fraction(coef.get(t, 0)) - cbar for t in o)  # d log p(o)/dw
            J += rho * p * f
            dJ += rho * p * sympy.Rational(score) * f
    return J, dJ


def case_dict(spec):
    """The sequence case of a spec, as a dict (rewards as a completion table, logits c*w)."""
    reward = {f"{x}:{'.'.join(o)}": str(v) for (x, o), v in spec["reward"].items()}
    data = {"name": "random", "kind": "sequence", "parameters": {"w": 0},
            "prompts": {x: str(p) for x, p in spec["prompts"].items()}, "vocabulary": spec["body"],
            "max_length": spec["max_length"], "logits": {t: f"{c}*w" for t, c in spec["coef"].items()},
            "reward": reward or 0}
    if spec["ref"] is not None:
        data["reference"] = {t: f"log({k})" for t, k in spec["ref"].items()}
        data["beta"] = str(spec["beta"])
    return data


@st.composite
def specs(draw):
    body = ["A", "B"][:draw(st.integers(1, 2))]
    vocab = body + ["eos"]
    L = draw(st.integers(1, 3))
    k = draw(st.integers(1, 2))
    names = ["x", "y"][:k]
    weights = [draw(st.integers(1, 4)) for _ in names]
    prompts = {x: Fraction(w, sum(weights)) for x, w in zip(names, weights)}
    # at least one non-zero coefficient, so that w is used
    coef = {t: draw(st.integers(-2, 2)) for t in vocab}
    if all(c == 0 for c in coef.values()):
        coef[vocab[0]] = 1
    reward = {}
    for x in names:
        for o in completions(body, "eos", L):
            if draw(st.booleans()):
                reward[(x, o)] = Fraction(draw(st.integers(-5, 5)), draw(st.integers(1, 4)))
    with_ref = draw(st.booleans())
    ref = {t: draw(st.integers(1, 3)) for t in vocab} if with_ref else None
    beta = Fraction(draw(st.integers(0, 4)), draw(st.integers(1, 5))) if with_ref else 0
    return {"body": body, "max_length": L, "prompts": prompts, "coef": coef, "reward": reward,
            "ref": ref, "beta": beta}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_the_compiled_mdp_has_the_sequence_objective_and_its_gradient(spec):
    case = pgverify.Case.from_dict(case_dict(spec))
    J, dJ = objective_and_gradient(spec)
    res = pgverify.check(case)
    assert res.verified
    assert same(res.objective, J), (res.objective.value, J)
    assert same(res.gradient["w"], dJ), (res.gradient["w"].value, dJ)


def test_the_kl_case_against_enumeration():
    """cases/seq_kl_reference.yaml at u = v = 0: logits A: u in both prompts, B: v in p2 only; the
    reference has logit log(2) on A (pi_ref = 1/2, 1/4, 1/4); the reward is 1 when the last token
    before eos is the prompt's answer (A for p1, B for p2); beta = 1/10."""
    half = sympy.Rational(1, 2)
    reward = {}
    for x, answer in (("p1", "A"), ("p2", "B")):
        for o in completions(["A", "B"], "eos", 3):
            content = o[:-1] if o[-1] == "eos" else o
            if content and content[-1] == answer:
                reward[(x, o)] = 1
    spec = {"body": ["A", "B"], "max_length": 3, "prompts": {"p1": half, "p2": half}, "reward": reward,
            "ref": {"A": 2}, "beta": sympy.Rational(1, 10)}
    J, dJu = objective_and_gradient(dict(spec, coef={"A": 1}))
    _, dJv = objective_and_gradient(dict(spec, coef={"p1": {}, "p2": {"B": 1}}))
    res = pgverify.check(CASES / "seq_kl_reference.yaml")
    assert res.verified
    assert same(res.objective, J) and same(res.gradient["u"], dJu) and same(res.gradient["v"], dJv)
    assert res.gradient["u"].sympy_value is None  # this one is compared to 45 digits (see same)


def test_a_hand_computed_case():
    """One prompt, tokens A and eos, max_length 2, reward 1 for 'A A' and 3 for 'eos': at w = 0 each
    token has probability 1/2, so J = 1/4 * 1 + 1/2 * 3 = 7/4 (eos alone has probability 1/2)."""
    seq = pgverify.sequence_case_from_dict({
        "name": "hand", "kind": "sequence", "parameters": {"w": 0}, "prompts": "q", "vocabulary": ["A"],
        "max_length": 2, "logits": {"A": "w"}, "reward": {"A.A": 1, "eos": 3}})
    assert seq.completions("q") == [("eos",), ("A", "A"), ("A", "eos")]
    case = seq.to_case()
    assert case.states == ("q", "q:A", TERMINAL) and case.terminal == {TERMINAL}
    assert case.P["q"] == {"A": {"q:A": 1}, "eos": {TERMINAL: 1}}
    assert case.P["q:A"] == {"A": {TERMINAL: 1}, "eos": {TERMINAL: 1}}
    assert case.r["q"]["eos"] == {TERMINAL: 3} and case.r["q"]["A"] == {} and case.r["q:A"]["eos"] == {}
    assert case.rho0 == {"q": 1} and case.gamma == 1 and case.horizon is None
    assert case.sequence is seq and case.policy_form == "softmax"
    res = pgverify.check(case)
    assert res.objective.value == "7/4" and res.verified


def test_kl_reward_uses_the_pi_symbol():
    """With beta and a reference every step carries -beta log(pi/pi_ref), written in the symbol pi
    (Case.r_written), so the reward family is the entropy bonus's: non-zero pointwise, zero in expectation."""
    case = pgverify.load_case(CASES / "seq_kl_reference.yaml")
    pi = case.pi_symbol
    assert case.r_written["p1"]["A"]["p1:A"] == -sympy.Rational(1, 10) * (sympy.log(pi) - sympy.log(sympy.Rational(1, 2)))
    res = pgverify.check(case)
    assert res.verified
    assert res.terms["reward"].pointwise_zero is False
    assert res.terms["reward"].identity is not None  # vanishes in expectation, as for an entropy bonus


def test_tabular_logits_name_one_parameter_per_context_and_token():
    seq = pgverify.sequence_case_from_dict({
        "name": "tab", "prompts": ["x", "y"], "vocabulary": ["A", "B"], "max_length": 2,
        "logits": "tabular", "parameters": {"theta_x_A_B": "1/2"}, "reward": {"x:A.B": 1}})
    names = seq.parameter_names
    assert names[0] == "theta_x_A_B" and len(names) == 2 * 3 * 3  # prompts x prefixes (-, A, B) x tokens
    assert "theta_x_eos" in names and "theta_y_B_eos" in names
    assert seq.point[seq.parameters[0]] == sympy.Rational(1, 2)
    case = seq.to_case()
    assert case.policy_form == "tabular"
    assert pgverify.check(case).verified


def test_features_of_contexts_and_completions():
    """length counts the tokens written (the end token included in a completion); count_/has_/first_/
    last_ look at the tokens before the end token; correct compares the last of them with the answer."""
    seq = pgverify.sequence_case_from_dict({
        "name": "f", "prompts": ["x", "y"], "vocabulary": ["A", "B"], "max_length": 3, "answers": {"x": "A", "y": "B"},
        "logits": {"A": "length + 10*count_A + 100*last_B + 1000*y"},
        "reward": "1000*correct + 100*finished + 10*length + count_B + first_B/2 + has_A/4"})
    assert seq.logits[("x", ())]["A"] == 0 and seq.logits[("x", ("A", "B"))]["A"] == 2 + 10 + 100
    assert seq.logits[("y", ("B",))]["A"] == 1 + 100 + 1000 and seq.logits[("y", ())]["B"] == 0
    assert seq.reward[("x", ("A", "eos"))] == 1000 + 100 + 20 + sympy.Rational(1, 4)
    assert seq.reward[("y", ("B", "A", "B"))] == 1000 + 30 + 2 + sympy.Rational(1, 2) + sympy.Rational(1, 4)
    assert seq.reward[("x", ("eos",))] == 100 + 10


def test_table_forms_of_logits_and_reward():
    seq = pgverify.sequence_case_from_dict({
        "name": "t", "parameters": {"w": 0}, "prompts": ["x", "y"], "vocabulary": ["A", "B"], "max_length": 2,
        "logits": {"default": {"A": "w"}, "x": {"B": 2}, "A": {"eos": 3}, "y:A": {"B": "w"}},
        "reward": {"default": "length", "A.eos": 5, "y:A.eos": 7},
        "reference": {"x": {"A": "log(2)"}}})
    w = sympy.Symbol("w", real=True)
    assert seq.logits[("x", ())] == {"A": 0, "B": 2, "eos": 0}  # a row replaces the default (missing tokens: 0)
    assert seq.logits[("y", ())] == {"A": w, "B": 0, "eos": 0}
    assert seq.logits[("x", ("A",))] == {"A": 0, "B": 0, "eos": 3}  # a bare prefix: every prompt
    assert seq.logits[("y", ("A",))] == {"A": 0, "B": w, "eos": 0}  # the prompt's own row first
    assert seq.reward[("x", ("A", "eos"))] == 5 and seq.reward[("y", ("A", "eos"))] == 7
    assert seq.reward[("y", ("B", "B"))] == 2
    assert seq.reference[("x", ())] == {"A": sympy.Rational(1, 2), "B": sympy.Rational(1, 4), "eos": sympy.Rational(1, 4)}
    assert seq.reference[("y", ())]["A"] == sympy.Rational(1, 3)


def test_stale_point_clip_and_the_point_moves_with_at():
    seq = pgverify.load_sequence_case(CASES / "seq_kl_reference.yaml")
    u, v = seq.parameters
    assert seq.old_point == {u: sympy.Rational(-1, 2), v: 0} and seq.clip_epsilon == sympy.Rational(1, 5)
    assert seq.beta == sympy.Rational(1, 10) and seq.prompt_probs == {"p1": sympy.Rational(1, 2), "p2": sympy.Rational(1, 2)}
    moved = pgverify.load_case(CASES / "seq_kl_reference.yaml").at({"u": "1/3"})
    assert moved.sequence.point[u] == sympy.Rational(1, 3) and moved.point[u] == sympy.Rational(1, 3)
    assert seq.at({"v": 1}).point[v] == 1


@pytest.mark.parametrize("path", SEQUENCE_CASES, ids=lambda p: p.stem)
def test_cli_check_and_derive_each_sequence_case(path):
    result = CliRunner().invoke(main, ["check", str(path), "--episodes", "2000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verified"] is True and data["monte_carlo"]["consistent"] is True
    result = CliRunner().invoke(main, ["derive", str(path)])
    assert result.exit_code == 0 and "verified: True" in result.stdout


def test_three_sequence_cases_with_their_sources():
    assert [p.stem for p in SEQUENCE_CASES] == ["seq_difficulty_bias", "seq_kl_reference", "seq_kl_wrong_way",
                                                "seq_length_bias"]
    for path in SEQUENCE_CASES:
        head = path.read_text().split("\nname:")[0]
        assert re.search(r"(et al\.|& \w+) 20\d\d", head) and "arXiv:" in head, path  # authors, year, where
        seq = pgverify.load_sequence_case(path)
        assert sequence_to_case(seq).states[-1] == TERMINAL


def test_kl_case_is_small_enough_for_groups_of_eight():
    """Issue 11's target case: 2 prompts, vocabulary 3 (eos included), completions of at most 3 tokens:
    15 completions per prompt, so groups of 8 as multisets are C(15 + 7, 8) = 319770 per prompt."""
    seq = pgverify.load_sequence_case(CASES / "seq_kl_reference.yaml")
    assert len(seq.prompts) == 2 and len(seq.vocabulary) == 3
    assert [len(seq.completions(x)) for x in seq.prompts] == [15, 15]
