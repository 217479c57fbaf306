"""The safe expression language of case files.

A case file is data.  Its expressions are parsed with Python's :mod:`ast` (which
only parses; it never runs anything) and the tree is walked against a whitelist:
numbers, names the caller allows, ``+ - * / **``, unary ``+ -``, parentheses and
the functions ``exp log sqrt sin cos tanh sigmoid``.  Anything else (attribute
access, subscripts, calls of other names, lambdas, strings, comparisons, ...) is
an :class:`~pgverify.errors.ExpressionError` naming the offending text.  Nothing
here calls ``eval``, ``exec``, ``sympify`` or ``parse_expr``.

Decimals are exact: ``0.1`` is the fraction 1/10, read from the text as written.

Examples
--------
>>> import sympy
>>> p = sympy.Symbol("p", real=True)
>>> parse_expression("1 - p/2", {"p": p})
1 - p/2
>>> parse_expression("0.1")
1/10
"""
from __future__ import annotations

import ast
import math
import re
from fractions import Fraction
from typing import Mapping

import sympy

from .errors import ExpressionError

__all__ = ["FUNCTIONS", "parse_expression", "parse_number", "exact_number"]


def _sigmoid(x):
    return 1 / (1 + sympy.exp(-x))


#: The functions an expression may call, each of one argument.
FUNCTIONS = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tanh": sympy.tanh,
    "sigmoid": _sigmoid,
}

_MAX_LENGTH = 10_000
#: Most decimal digits of an exact number (numerator or denominator), and of a number's magnitude
#: (10**1000): beyond, a value is refused before any work (docs/limits.md).
MAX_DIGITS = 1000
_MAX_BITS = int(MAX_DIGITS * 3.3219280948873626) + 1
_EXPONENT = re.compile(r"[eE]([+-]?[0-9_]+)")
_MAX_POWER = 1000  # largest integer exponent accepted (guards against 9**9**9)
_MAX_DEPTH = 200

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def exact_number(value) -> sympy.Expr:
    """An exact sympy number from a Python int, float (read as its shortest decimal), Fraction or str."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # a NumPy scalar: its Python int or float (a float64 read as the decimal it prints)
    if isinstance(value, bool):
        raise ExpressionError("a boolean is not a number", str(value))
    if isinstance(value, int):
        _check_bits(value, 1, str(value)[:40])
        return sympy.Integer(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ExpressionError("not a finite number", repr(value))
        f = Fraction(repr(value))
        return sympy.Rational(f.numerator, f.denominator)
    if isinstance(value, Fraction):
        _check_bits(value.numerator, value.denominator, str(value)[:40])
        return sympy.Rational(value.numerator, value.denominator)
    raise ExpressionError("not a number", repr(value))


def _check_bits(p: int, q: int, shown: str) -> None:
    if max(abs(p).bit_length(), q.bit_length()) > _MAX_BITS:
        raise ExpressionError(f"a number of more than {MAX_DIGITS} digits", shown + "...",
                              f"pgverify works with exact numbers of at most {MAX_DIGITS} digits (docs/limits.md)")


def _log10_magnitude(x: sympy.Expr) -> float | None:
    """log10 |x| of a number without parameters, estimated in floating point (None: unknown)."""
    try:
        v = sympy.N(x, 15)
        if v.is_zero:
            return -math.inf
        return float(sympy.log(abs(v), 10).evalf(15))
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        return None


def parse_number(text: str) -> sympy.Rational:
    """Parse a numeric literal exactly: ``3``, ``-2``, ``0.25``, ``1e-3``, ``1/3``."""
    return parse_expression(text, {})


def parse_expression(
    text: str,
    names: Mapping[str, sympy.Expr] | None = None,
    *,
    context: str = "",
) -> sympy.Expr:
    """Parse ``text`` into a sympy expression, allowing only the whitelisted language.

    Parameters
    ----------
    text : str
        The expression as written in the case file.
    names : mapping of str to sympy.Expr
        The names this expression may use (parameters, constants, ``pi``, ``a``)
        and what each stands for.
    context : str
        Said in the error when an unknown name is used (e.g. "in a reward").

    Raises
    ------
    ExpressionError
        If the text is not in the language; the message names the offending part.
    """
    names = names if names is not None else {}  # only read: no copy (a tabular case has 10**5 names)
    if not isinstance(text, str):
        return exact_number(text)
    src = text.strip()
    if not src:
        raise ExpressionError("empty expression", text)
    if len(src) > _MAX_LENGTH:
        raise ExpressionError(f"expression longer than {_MAX_LENGTH} characters", src[:40] + "...")
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as exc:
        if "digits" in str(exc.msg):  # an integer literal over Python's 4300 digits
            raise ExpressionError(f"a number of more than {MAX_DIGITS} digits", src[:40] + "...",
                                  "docs/limits.md lists the limits") from None
        raise ExpressionError(f"not a valid expression ({exc.msg})", src) from None
    except ValueError as exc:  # an integer literal over Python's 4300 digits, or a null byte
        reason = (f"a number of more than {MAX_DIGITS} digits" if "digits" in str(exc)
                  else f"not a valid expression ({exc})")
        raise ExpressionError(reason, src[:40]) from None
    except (RecursionError, MemoryError):
        raise ExpressionError("expression too deeply nested", src[:40]) from None
    try:
        return _Walker(src, names, context).visit(tree.body, 0)
    except RecursionError:
        raise ExpressionError("expression too deeply nested", src[:40]) from None


class _Walker:
    def __init__(self, src: str, names: Mapping[str, sympy.Expr], context: str):
        self.src = src
        self.names = names
        self.context = context

    def segment(self, node) -> str:
        seg = ast.get_source_segment(self.src, node)
        return seg if seg is not None else self.src

    def fail(self, node, message, hint=None):
        raise ExpressionError(message, self.segment(node), hint)

    def visit(self, node, depth):
        if depth > _MAX_DEPTH:
            self.fail(node, "expression too deeply nested")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(node, "only numbers and names are allowed, not this literal")
            if self.segment(node)[:2].lower() in ("0x", "0o", "0b"):
                self.fail(node, "only decimal numbers are allowed (this is a hexadecimal, octal or binary literal)",
                          "Write the number in decimal")
            if isinstance(value, int):
                if value.bit_length() > _MAX_BITS:
                    self.fail(node, f"a number of more than {MAX_DIGITS} digits")
                return sympy.Integer(value)
            # Read the decimal exactly as written: 0.1 is 1/10 (its exponent checked first: 1e9999999999
            # would otherwise be expanded into ten billion digits)
            m = _EXPONENT.search(self.segment(node))
            if m and abs(int(m.group(1).replace("_", ""))) > MAX_DIGITS:
                self.fail(node, f"a number with a decimal exponent beyond {MAX_DIGITS} in magnitude",
                          f"pgverify works with exact numbers of at most {MAX_DIGITS} digits (docs/limits.md)")
            try:
                f = Fraction(self.segment(node).replace("_", ""))
            except (ValueError, ZeroDivisionError):
                f = Fraction(repr(value))
            return sympy.Rational(f.numerator, f.denominator)
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            if node.id in FUNCTIONS:
                self.fail(node, f"the function {node.id} must be called with one argument, as {node.id}(x)")
            where = f" {self.context}" if self.context else ""
            known = ", ".join(sorted(self.names)) or "none"
            self.fail(node, f"unknown name {node.id!r}{where}", f"Names allowed here: {known}")
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            self.fail(node, "only unary + and - are allowed")
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            # a chain a + b - c + ... (or a * b / c ...) is walked along its left spine: its length is
            # breadth, not nesting (a flat sum of 250 terms was refused as "too deeply nested")
            same = (ast.Add, ast.Sub) if isinstance(node.op, (ast.Add, ast.Sub)) else (ast.Mult, ast.Div)
            chain = []
            cur = node
            while isinstance(cur, ast.BinOp) and isinstance(cur.op, same):
                chain.append(cur)
                cur = cur.left
            acc = self.visit(cur, depth + 1)
            for link in reversed(chain):
                right = self.visit(link.right, depth + 1)
                if isinstance(link.op, ast.Div) and right.is_zero:
                    self.fail(link, "division by zero")
                acc = _BINOPS[type(link.op)](acc, right)
            return acc
        if isinstance(node, ast.BinOp):
            left = self.visit(node.left, depth + 1)
            right = self.visit(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):
                if right.is_Number and abs(right) > _MAX_POWER:
                    self.fail(node, f"exponent larger than {_MAX_POWER} in magnitude")
                if right.is_Rational and not right.is_Integer and right.q > _MAX_POWER:
                    self.fail(node, f"a root of order above {_MAX_POWER} (the exponent's denominator is {right.q})",
                              "docs/limits.md lists the limits")
                if (
                    left.is_Rational
                    and right.is_Number
                    and max(int(abs(left.p)).bit_length(), int(left.q).bit_length()) * abs(right) > 100_000
                    and abs(left) != 1
                ):
                    self.fail(node, "number too large", f"Powers of exact numbers may have at most {MAX_DIGITS} "
                              "digits (docs/limits.md)")
                if left.is_number and right.is_number and not right.is_Integer:
                    mag, ex = _log10_magnitude(left), _log10_magnitude(right)
                    if mag is not None and ex is not None and ex > 0 and mag > 0 and \
                            mag * 10 ** ex > MAX_DIGITS:
                        self.fail(node, f"a power whose value has more than {MAX_DIGITS} digits",
                                  "Numbers are kept exact; docs/limits.md lists the limits")
                if left.is_zero and right.is_Number and right.is_negative:
                    self.fail(node, "division by zero")
                return left**right
            op = _BINOPS.get(type(node.op))
            if op is None:
                self.fail(node, "operator not allowed", "Use + - * / ** and parentheses")
            if isinstance(node.op, ast.Div) and right.is_zero:
                self.fail(node, "division by zero")
            return op(left, right)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                self.fail(node, "call not allowed", f"Only {', '.join(FUNCTIONS)} may be called")
            if len(node.args) != 1 or node.keywords:
                self.fail(node, f"{node.func.id} takes exactly one argument")
            arg = self.visit(node.args[0], depth + 1)
            if node.func.id in ("log",) and arg.is_number and not arg.is_positive:
                self.fail(node, "log of a number that is not positive")
            if node.func.id == "sqrt" and arg.is_number and arg.is_negative:
                self.fail(node, "sqrt of a negative number")
            if node.func.id in ("exp", "sigmoid") and arg.is_number:
                mag = _log10_magnitude(arg)
                if mag is None or 10 ** min(mag, 308) > MAX_DIGITS * math.log(10):
                    self.fail(node, f"exp of a number beyond {MAX_DIGITS * math.log(10):.0f} in magnitude: its value "
                              f"would have more than {MAX_DIGITS} digits", "docs/limits.md lists the limits")
            out = FUNCTIONS[node.func.id](arg)
            return out
        self.fail(
            node,
            f"{type(node).__name__} is not allowed in an expression",
            "Expressions may use numbers, parameter and constant names, + - * / **, "
            "parentheses and exp log sqrt sin cos tanh sigmoid",
        )
