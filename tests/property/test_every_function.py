"""Property-based: random valid cases with every policy form and every function of the expression
language (exp log sqrt sin cos tanh sigmoid) in every place (logits, probabilities, rewards with pi,
dynamics, start, discount) are checked without an exception, every engine agrees, and the gradient
matches central finite differences of J computed to 50 digits (h = 1e-20: the truncation error is
O(h^2) = 1e-40, the rounding error 1e-50 / h = 1e-30, so a relative 1e-22 is a strict test)."""
import mpmath
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgverify

FUNCS = ["exp", "sin", "cos", "tanh", "sigmoid", "sqrt", "log"]
POINTS = ["1/3", "2/5", "3/4", "1/7"]


def _f(name, x):
    """name(x) kept in its domain for x in (0, 1]: log and sqrt of 1 + x."""
    return f"{name}(1 + {x})" if name in ("log", "sqrt") else f"{name}({x})"


@st.composite
def every_function_case(draw):
    form = draw(st.sampled_from(["explicit", "softmax", "deterministic"]))
    f1, f2, f3, f4 = (draw(st.sampled_from(FUNCS)) for _ in range(4))
    data = {"name": "every-function", "parameters": {"t": draw(st.sampled_from(POINTS)),
                                                     "u": draw(st.sampled_from(POINTS))},
            "states": ["A", "B", "G"], "terminal": ["G"], "start": {"A": "sigmoid(u)", "B": "1 - sigmoid(u)"},
            "discount": draw(st.sampled_from(["9/10", "(1 + sigmoid(t)) / 3", "1/2"]))}
    move = f"sigmoid({_f(f2, 'u')})"  # dynamics through a function of u
    if form == "deterministic":
        data["policy"] = {"deterministic": {"A": _f(f1, "t"), "B": "t*u"}}
        data["transitions"] = {"A": {"B": f"sigmoid(a) * {move}", "G": f"1 - sigmoid(a) * {move}"},
                               "B": {"G": 1}}
        data["rewards"] = {"default": f"-a**2/2 + {_f(f3, 'u')}", "B": {"G": f"{_f(f4, 't')} * a"}}
        return data
    data["actions"] = ["x", "y"]
    if form == "softmax":
        data["policy"] = {"softmax": {"A": {"x": _f(f1, "t")}, "B": {"y": _f(f2, "t*u")}}}
    else:
        data["policy"] = {"A": {"x": f"sigmoid({_f(f1, 't')})", "y": f"1 - sigmoid({_f(f1, 't')})"},
                          "B": {"x": "t/2", "y": "1 - t/2"}}
    data["transitions"] = {"A": {"x": {"B": move, "G": f"1 - {move}"}, "y": "G"},
                           "B": {"x": "G", "y": {"A": "1/2", "G": "1/2"}}}
    data["rewards"] = {"default": f"-log(pi) / 10 + {_f(f3, 'u')}", "B": {"x": _f(f4, "t")}}
    return data


def _J(case, point):
    res = pgverify.check(case, at=point, mode="at-point", engines=("bellman",))
    with mpmath.workdps(60):
        return mpmath.mpf(res.objective.digits)


def _check(data):
    case = pgverify.Case.from_dict(data)
    res = pgverify.check(case)
    assert res.agree and res.verified, (data, [c for c in res.comparisons if not c.ok])
    h = sympy.Rational(1, 10**20)
    with mpmath.workdps(60):
        for p in case.parameters:
            up = {q.name: case.point[q] + (h if q == p else 0) for q in case.parameters}
            down = {q.name: case.point[q] - (h if q == p else 0) for q in case.parameters}
            fd = (_J(case, up) - _J(case, down)) / (2 * mpmath.mpf(10) ** -20)
            g = mpmath.mpf(res.gradient[p.name].digits)
            assert abs(fd - g) <= mpmath.mpf(10) ** -22 * max(1, abs(g)), (data, p.name, fd, g)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(every_function_case())
def test_every_function_everywhere_agrees_and_matches_finite_differences(data):
    _check(data)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(every_function_case())
def test_every_function_everywhere_many_more_cases(data):
    _check(data)
