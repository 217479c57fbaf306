"""The safe expression language: what it accepts, exactly, and what it refuses, with the text."""
import pytest
import sympy

from pgverify.errors import ExpressionError
from pgverify.expr import parse_expression

p = sympy.Symbol("p", real=True)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1/3", sympy.Rational(1, 3)),
        ("0.1", sympy.Rational(1, 10)),  # decimals are exact, as written
        ("0.30000000000000004", sympy.Rational(30000000000000004, 10**17)),
        ("1e-3", sympy.Rational(1, 1000)),
        ("2**-2", sympy.Rational(1, 4)),
        ("-(1 - p)/2", (p - 1) / 2),
        ("sigmoid(p)", 1 / (1 + sympy.exp(-p))),
        ("exp(log(2))", sympy.Integer(2)),
        ("sqrt(4)", sympy.Integer(2)),
        ("tanh(p) + sin(p) * cos(p)", sympy.tanh(p) + sympy.sin(p) * sympy.cos(p)),
    ],
)
def test_accepts(text, expected):
    assert sympy.simplify(parse_expression(text, {"p": p}) - expected) == 0


@pytest.mark.parametrize(
    "text, message, given",
    [
        ("__import__('os').system('echo hi')", "call not allowed", "__import__('os').system('echo hi')"),
        ("p.real", "Attribute is not allowed in an expression", "p.real"),
        ("[1, 2]", "List is not allowed in an expression", "[1, 2]"),
        ("lambda: 1", "Lambda is not allowed in an expression", "lambda: 1"),
        ("'text'", "only numbers and names are allowed, not this literal", "'text'"),
        ("p < 1", "Compare is not allowed in an expression", "p < 1"),
        ("q + 1", "unknown name 'q'", "q"),
        ("exp(1, 2)", "exp takes exactly one argument", "exp(1, 2)"),
        ("exp", "the function exp must be called with one argument, as exp(x)", "exp"),
        ("1 +", "not a valid expression (invalid syntax)", "1 +"),
        ("9**9**9", "exponent larger than 1000 in magnitude", "9**9**9"),
        ("1/0", "division by zero", "1/0"),
        ("log(0)", "log of a number that is not positive", "log(0)"),
        ("p // 2", "operator not allowed", "p // 2"),
        ("", "empty expression", ""),
    ],
)
def test_refuses_with_the_offending_text(text, message, given):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, {"p": p})
    assert info.value.reason == message
    assert info.value.text == given


def test_nothing_is_executed(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    text = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(ExpressionError):
        parse_expression(text, {})
    assert not marker.exists()


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(ExpressionError, match="too many nested parentheses"):
        parse_expression("(" * 500 + "1" + ")" * 500, {})
    with pytest.raises(ExpressionError, match="too deeply nested"):
        parse_expression("-" * 300 + "1", {})
    # a long flat sum is breadth, not depth (it was refused as "too deeply nested")
    assert parse_expression("1" + "+1" * 1000, {}) == 1001
