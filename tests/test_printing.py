"""Exact results as text: values are never 'simplified' into other numbers, long expressions are
printed from the field and never silently dropped, families are classified without simplify."""
import io
import json
import sys
from fractions import Fraction
from pathlib import Path

import mpmath
import pytest
import sympy
from rich.console import Console

import pgverify
from pgverify import printing
from pgverify.check import EXPRESSION_LIMIT
from pgverify.cli import render_summary

from .conftest import CASES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from chain_benchmark import chain_dict  # noqa: E402


def sigmoid_walk(theta):
    """A gambler's-ruin walk on w0..w6 from w3: every state steps right with probability
    sigmoid(theta), left otherwise; reward 1 on reaching w6, 0 on reaching w0.

    Expected values (derived by hand): with s = sigmoid(theta) and r = (1 - s)/s = exp(-theta),
    the probability of reaching w6 before w0 from w3 is (1 - r**3)/(1 - r**6) = 1/(1 + r**3)
    = sigmoid(3*theta) (gambler's ruin), so J = sigmoid(3 theta) and dJ/dtheta =
    3 sigmoid(3 theta) (1 - sigmoid(3 theta)).
    """
    states = [f"w{i}" for i in range(7)]
    inner = states[1:6]
    return pgverify.Case.from_dict({
        "name": "sigmoid-walk", "parameters": {"theta": str(theta)},
        "states": states, "terminal": ["w0", "w6"], "actions": ["go"], "start": "w3",
        "policy": {s: {"go": 1} for s in inner},
        "transitions": {f"w{i}": {"go": {f"w{i + 1}": "sigmoid(theta)", f"w{i - 1}": "1 - sigmoid(theta)"}}
                        for i in range(1, 6)},
        "rewards": {"w5": {"go": {"w6": 1}}},
    })


def _mp_sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


@pytest.mark.parametrize("theta", [25, 10])
def test_sigmoid_walk_is_not_rounded_to_an_exact_one_or_zero(theta):
    res = pgverify.check(sigmoid_walk(theta))
    assert res.verified
    with mpmath.workdps(80):
        J = _mp_sigmoid(3 * theta)  # the closed form of the docstring, in 80-digit arithmetic
        dJ = 3 * J * (1 - J)
        one_minus_J = 1 / (1 + mpmath.exp(3 * theta))
    q, g = res.objective, res.gradient["theta"]
    # the exact value is printed as computed, not "1" (theta = 10) or "0" (theta = 25)
    assert q.value not in ("0", "1") and g.value != "0"
    assert q.float == float(J) and q.float > 0.99
    assert g.float == pytest.approx(float(dJ), rel=1e-14)
    if theta == 25:
        assert g.float == pytest.approx(8.0359108854242338e-33, rel=1e-14)
    else:
        assert q.float == pytest.approx(1 - 9.357622968839e-14, abs=1e-26) and q.float != 1.0
    # the exact value itself, read back, is J to 50 digits (1 - J too: no cancellation hidden)
    back = sympy.sympify(q.value)
    with mpmath.workdps(80):
        assert abs(mpmath.mpf(str(sympy.N(1 - back, 60))) - one_minus_J) < one_minus_J * mpmath.mpf(10) ** -45
        assert abs(mpmath.mpf(str(sympy.N(sympy.sympify(g.value), 60))) - dJ) < dJ * mpmath.mpf(10) ** -45


def test_softmax_bandit_with_logit_100_has_a_tiny_positive_objective():
    """Two actions, logits t (action a) and 0 (action b), reward 1 on b: J = 1/(1 + exp(t)) and
    dJ/dt = -exp(t)/(1 + exp(t))**2 (the softmax by hand); at t = 100, J ~ 3.72e-44."""
    case = pgverify.Case.from_dict({
        "name": "bandit", "parameters": {"t": "100"}, "states": ["S", "done"], "terminal": ["done"],
        "actions": ["a", "b"], "start": "S", "policy": {"softmax": {"S": {"a": "t"}}},
        "transitions": {"S": {"a": "done", "b": "done"}}, "rewards": {"S": {"b": 1}}})
    res = pgverify.check(case)
    assert res.verified
    with mpmath.workdps(60):
        J = 1 / (1 + mpmath.exp(100))
        dJ = -mpmath.exp(100) / (1 + mpmath.exp(100)) ** 2
    assert res.objective.value != "0" and res.gradient["t"].value != "0"
    assert res.objective.float == pytest.approx(float(J), rel=1e-15) and res.objective.float > 0
    assert res.objective.float == pytest.approx(3.720075976020836e-44, rel=1e-15)
    assert res.gradient["t"].float == pytest.approx(float(dJ), rel=1e-15)
    assert sympy.simplify(sympy.sympify(res.objective.value) - 1 / (1 + sympy.exp(100))) == 0


def test_a_reward_of_one_plus_a_tiny_irrational_keeps_its_second_term():
    """Both actions pay 1 + sqrt(2)/10**20 and end the episode, so J = 1 + sqrt(2)/10**20 whatever
    the policy, and dJ/dp = 0."""
    case = pgverify.Case.from_dict({
        "name": "tiny", "parameters": {"p": "1/2"}, "states": ["S", "done"], "terminal": ["done"],
        "actions": ["a", "b"], "start": "S", "policy": {"S": {"a": "p", "b": "1 - p"}},
        "transitions": {"S": {"a": "done", "b": "done"}},
        "rewards": {"S": {"a": "1 + sqrt(2)/10**20", "b": "1 + sqrt(2)/10**20"}}})
    res = pgverify.check(case)
    expected = 1 + sympy.sqrt(2) / 10**20
    assert sympy.sympify(res.objective.value) - expected == 0  # the same number, term for term
    assert res.objective.digits.startswith("1.00000000000000000001414213562373095")
    assert res.objective.float == 1.0
    assert res.gradient["p"].value == "0" and res.gradient["p"].float == 0.0


def test_a_value_is_normalised_only_by_exact_rewrites():
    """The short corridor at its optimum p = 2 - sqrt(2): J = -6 - 4 sqrt(2) (Sutton & Barto,
    Example 13.1) and dJ/dp = 0 there, both by exact algebra (no nearby closed form)."""
    res = pgverify.check(CASES / "short_corridor.yaml", at={"p": "2 - sqrt(2)"})
    assert res.objective.value == "-6 - 4*sqrt(2)"
    assert res.gradient["p"].value == "0" and res.gradient["p"].float == 0.0


def test_softmax_with_50_actions_is_classified_without_simplify():
    """One state, 50 actions, a tabular softmax (50 parameters, all 0 at the point: each action
    has probability 1/50), reward i mod 7 for action a_i: J = sum_i (i mod 7)/50 = 147/50 and
    dJ/dtheta_i = pi_i (r_i - J) = (i mod 7 - 147/50)/50."""
    acts = [f"a{i}" for i in range(50)]
    case = pgverify.Case.from_dict({
        "name": "softmax-50", "states": ["S", "done"], "terminal": ["done"], "actions": acts,
        "start": "S", "policy": {"softmax": "tabular"}, "transitions": {"S": {a: "done" for a in acts}},
        "rewards": {"S": {a: i % 7 for i, a in enumerate(acts)}}})
    res = pgverify.check(case)
    assert res.verified and res.objective.value == "147/50"
    for i, a in enumerate(acts):
        assert Fraction(res.gradient[f"theta_S_{a}"].value) == (Fraction(i % 7) - Fraction(147, 50)) / 50
    assert [f for f, t in res.terms.items() if not t.pointwise_zero] == ["policy"]
    assert res.terms["policy"].witness == "d log pi(a0|S)/dtheta_S_a0 = 49/50 at the point"


def _parse(text, symbols):
    """The test reads printed expressions back with sympy (pgverify itself never does)."""
    return sympy.sympify(text, locals={str(s): s for s in symbols})


@pytest.fixture(scope="module")
def chain():
    return pgverify.check(pgverify.Case.from_dict(chain_dict(100, 2)), mode="symbolic")


def test_chain_100_2_symbolic_json_carries_the_expressions(chain):
    data = json.loads(json.dumps(chain.to_dict()))
    assert chain.verified and chain.proof == "symbolic"
    quantities = [data["objective"]] + list(data["gradient"].values())
    for q in quantities:
        assert q["expression"] is not None and "expression_omitted" not in q
    assert max(len(q["expression"]) for q in quantities) > EXPRESSION_LIMIT  # long, and there in full
    ref = chain.engines["bellman"]
    alg = chain.algebra
    p0, p1 = sympy.symbols("p0 p1")
    # the printed expressions (J and dJ/dp0; sympy takes about 4 s to read each), read back with
    # sympy, are the engine's rational functions: equal at two rational points
    for q, x in [(data["objective"], ref.J), (data["gradient"]["p0"], ref.grad[0])]:
        back = _parse(q["expression"], [p0, p1])
        for point in ((Fraction(1, 3), Fraction(2, 5)), (Fraction(3, 4), Fraction(1, 2))):
            got = back.xreplace({p0: sympy.Rational(point[0]), p1: sympy.Rational(point[1])})
            want = alg.domain.evaluate(x, list(point))
            assert got == sympy.Rational(want.numerator, want.denominator)


def test_chain_100_2_automatic_mode_says_where_the_expression_went(chain):
    chain.expression_limit = EXPRESSION_LIMIT  # what an automatic-mode run puts in its result
    try:
        data = chain.to_dict()
        long = [q for q in [data["objective"]] + list(data["gradient"].values()) if q["expression"] is None]
        assert long
        for q in long:
            assert q["expression_omitted"]["length"] > EXPRESSION_LIMIT
            assert "--symbolic --json" in q["expression_omitted"]["how_to_get_it"]
        contrib = data["terms"]["dynamics"]["contribution"]["p0"]
        assert contrib["expression"] is not None or contrib["expression_omitted"]["length"] > EXPRESSION_LIMIT
        out = io.StringIO()
        render_summary(chain, Console(file=out, width=100000, highlight=False))
        text = out.getvalue()
        assert "characters, not shown here: 'pgverify check CASE --symbolic --json' prints it in full" in text
    finally:
        chain.expression_limit = None


@pytest.mark.parametrize("name", ["two_state_softmax", "entropy_bonus", "deterministic_policy",
                                  "finite_horizon_chain", "short_corridor"])
def test_the_printer_from_the_field_reads_back_as_the_same_function(name, monkeypatch):
    """Print every quantity of small cases straight from the flint polynomials (as large ones are)
    and read it back: the same function of theta as the sympy form, at a couple of points."""
    res = pgverify.check(CASES / f"{name}.yaml", mode="symbolic")
    alg = res.algebra
    monkeypatch.setattr(printing, "FACTOR_TERMS", -1)
    elements = [res.engines["bellman"].J] + res.engines["bellman"].grad
    for x in elements:
        text, expr = printing.element_string(alg, x)
        assert expr is None or alg.is_zero(x)
        back = _parse(text, alg.params)
        ref = alg.to_expr(x)
        for k in (1, 2):
            pt = {p: sympy.Rational(k, 3 + j) for j, p in enumerate(alg.params)}
            diff = sympy.N((back - ref).xreplace(pt), 50)
            assert abs(diff) < 1e-40, (name, text)


def test_atoms_are_parenthesised_when_they_would_bind_loosely():
    assert printing._atomic("exp(theta)") and printing._atomic("p") and printing._atomic("sqrt(p + 1)")
    assert not printing._atomic("(p + 1)**(1/3)") and not printing._atomic("exp(a)*exp(b)")
    assert not printing._atomic("2*pi")
