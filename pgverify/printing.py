"""Exact results as text: expressions straight from the field, values as computed, floats that are right.

Expressions
    A symbolic-mode element is n/d with n, d polynomials in the generators (the parameters and
    the atoms, such as ``_E0`` for exp(theta)).  Small ones (at most :data:`FACTOR_TERMS` terms in
    n and d together) are turned into a sympy expression and factored, as pgverify always printed
    them.  Larger ones are printed from the polynomials themselves (python-flint writes them in C),
    with each generator's name replaced by what it stands for: no sympy expression is built, no
    ``count_ops``, no ``factor``.  The string is one that sympy parses back (``**`` for powers).
Values
    An exact value at the point is printed as computed.  It is never replaced by a number that
    merely looks close (``sympy.nsimplify`` guesses a closed form from a 15-digit float: it turns
    sigmoid(75) into 1 and exp(-100) into 0).  Small algebraic values are put in a normal form by
    exact, value-preserving rewrites only (``cancel``, ``radsimp``); others are left as computed.
Floats
    The float of an exact irrational value is evaluated with sympy's adaptive evalf in strict mode:
    the working precision is raised until the requested digits are correct.
"""
from __future__ import annotations

import re
import weakref

import sympy
from sympy.core.evalf import PrecisionExhausted

from . import flintfield

__all__ = ["FACTOR_TERMS", "FACTOR_OPS", "element_string", "element_terms", "exact_normal", "exact_float",
           "omit_long", "omitted_note", "float_text", "short_exact", "LONG_NUMBER"]

#: at most this many terms (numerator plus denominator) and a sympy expression is built and factored
FACTOR_TERMS = 400
#: ... and factored when it has fewer operations than this (``sympy.count_ops``), as before
FACTOR_OPS = 400
#: irrational values with fewer operations than this get the exact normal form cancel + radsimp
NORMAL_OPS = 200
#: Largest rational (in bits) in an expression that is still factored for printing
FACTOR_BITS = 256
#: the highest working precision (decimal digits) of the evaluation of a float
MAX_DIGITS = 1200

_names: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_X = re.compile(r"x(\d+)")


def _atomic(s: str) -> bool:
    """True when ``s`` binds tighter than ``**``: a name, a number, or one call f(...)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+", s):
        return True
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*\(", s)
    if not m or not s.endswith(")"):
        return False
    depth = 0
    for i, ch in enumerate(s[m.end() - 1:], start=m.end() - 1):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i == len(s) - 1
    return False


def generator_names(alg) -> list[str]:
    """What each generator of a symbolic algebra stands for, as sympy-readable strings."""
    names = _names.get(alg)
    if names is None:
        names = []
        for g in alg.gens:
            atom = alg.norm.by_symbol.get(g)
            s = str(atom.expr) if atom is not None else str(g)
            names.append(s if _atomic(s) else f"({s})")
        _names[alg] = names
    return names


def element_terms(alg, x) -> int:
    """The number of terms of a symbolic-mode element's numerator and denominator together."""
    if isinstance(alg.domain, flintfield.FlintField):
        return len(x.n) + len(x.d)
    return len(x.numer) + len(x.denom)


def _poly_string(p, names) -> str:
    s = str(p).replace("^", "**")
    return _X.sub(lambda m: names[int(m.group(1))], s)


def element_string(alg, x) -> tuple[str, sympy.Expr | None]:
    """The expression of a symbolic-mode element in the parameters, and its sympy form if built.

    Small elements: factored when ``count_ops`` < :data:`FACTOR_OPS` (what pgverify always printed).
    Large ones (more than :data:`FACTOR_TERMS` terms): printed from the polynomials, and the sympy
    form is left to be built on demand (None).
    """
    if element_terms(alg, x) <= FACTOR_TERMS or not isinstance(alg.domain, flintfield.FlintField):
        expr = alg.to_expr(x)
        try:
            if sympy.count_ops(expr) < FACTOR_OPS and _small_numbers(expr):
                expr = sympy.factor(expr)
        except Exception:  # factoring is cosmetic; keep the unfactored form
            pass
        return str(expr), expr
    names = generator_names(alg)
    num = _poly_string(x.n, names)
    if x.d.is_one():
        return num, None
    return f"({num})/({_poly_string(x.d, names)})", None


def _small_numbers(expr: sympy.Expr) -> bool:
    """Every rational in ``expr`` has at most :data:`FACTOR_BITS` bits in numerator and denominator.

    ``factor`` (Wang's algorithm) looks for primes beyond a bound on the coefficients: with a discount
    of 1e-308 it spent 28 s in primality tests.  Factoring is cosmetic, so it is skipped there.
    """
    return all(abs(int(q.p)).bit_length() <= FACTOR_BITS and int(q.q).bit_length() <= FACTOR_BITS
               for q in expr.atoms(sympy.Rational))


def _algebraic(v: sympy.Expr) -> bool:
    """A number built from rationals by + - * / and rational powers (no exp, log, pi, E, ...)."""
    return not v.atoms(sympy.Function, sympy.NumberSymbol)


def exact_normal(v: sympy.Expr) -> sympy.Expr:
    """A small algebraic value in a normal form by exact rewrites (cancel, radsimp); others as computed.

    The rewrites preserve the value: (2*sqrt(2))/(-2 + (2 - sqrt(2))**2 + sqrt(2)) becomes
    -6 - 4*sqrt(2), and an algebraic zero becomes 0.  Values with exp, log, ... are left as
    computed (``cancel`` would write exp(-1/2) as a power of exp(1/2) and blow them up), except
    that one which evalf cannot tell from zero is tested exactly by ``cancel``.
    """
    if v.is_Rational or not v.is_number:
        return v
    try:
        if sympy.count_ops(v) >= NORMAL_OPS:
            return v
        if _algebraic(v):
            return sympy.radsimp(sympy.cancel(v))
        if _indistinguishable_from_zero(v) and sympy.cancel(v) == 0:
            return sympy.Integer(0)
    except Exception:  # the normal form is cosmetic
        pass
    return v


def _indistinguishable_from_zero(v: sympy.Expr) -> bool:
    try:
        v.evalf(15, strict=True, maxn=MAX_DIGITS)
    except PrecisionExhausted:
        return True
    return False


def exact_float(v: sympy.Expr, digits: int) -> sympy.Float:
    """``v`` to ``digits`` correct significant digits (adaptive precision, sympy's strict evalf).

    When evalf cannot tell ``v`` from zero with :data:`MAX_DIGITS` digits of working precision,
    |v| is far below the smallest float64 (for values built from terms of moderate size) and 0 is
    returned.
    """
    if v.is_Rational:
        return sympy.Float(v, digits)
    try:
        return v.evalf(digits, strict=True, maxn=MAX_DIGITS)
    except PrecisionExhausted:
        return sympy.Float(0, digits)


def omitted_note(length: int, what: str = "expression") -> dict:
    """What the JSON says in place of a long expression or value that it leaves out."""
    how = ("'pgverify check CASE --symbolic --json' prints it in full, "
           "and 'pgverify derive CASE --output FILE' writes it")
    if what == "value":
        how += "; from Python, pgverify.check(CASE) has it in full (Quantity.value)"
    return {"length": length, "how_to_get_it": how}


def omit_long(d: dict, limit: int | None) -> dict:
    """``d`` (with ``expression`` and ``value`` strings) with strings longer than ``limit`` left out.

    A left-out string becomes null and ``expression_omitted`` / ``value_omitted`` says how long
    it was and how to get it.  ``limit`` None: nothing is left out.
    """
    if limit is None:
        return d
    out = dict(d)
    for key in ("expression", "value"):
        s = out.get(key)
        if isinstance(s, str) and len(s) > limit:
            out[key] = None
            out[f"{key}_omitted"] = omitted_note(len(s), key)
    return out


def float_text(number: float, digits: str | None, sig: int) -> str:
    """``number`` to ``sig`` digits; a value beyond float64's range (0.0 or inf for a non-zero
    finite value) from its 50-digit decimal instead, in scientific form."""
    if digits is not None and (number == 0.0 or number in (float("inf"), float("-inf"))):
        import mpmath

        with mpmath.workdps(60):
            d = mpmath.mpf(digits)
            if d != 0:
                return mpmath.nstr(d, sig)
    return f"{number:.{sig}g}"


LONG_NUMBER = re.compile(r"\d{%d,}" % 61)


def short_exact(value: str | None, digits: str | None) -> str | None:
    """An exact value for a reader: as computed, unless it holds a number of more than 60 digits;
    then its 12 leading digits in scientific form and how long it is (``--json`` has it in full).
    Used by the terminal summary and the derivation's text (formatting only: the value is not changed
    anywhere it is stored)."""
    if value is None or not LONG_NUMBER.search(value):
        return value
    if _RATIONAL_TEXT.fullmatch(value):
        import mpmath
        from fractions import Fraction

        f = Fraction(value)
        with mpmath.workdps(20):
            approx = "~" + mpmath.nstr(mpmath.mpf(f.numerator) / f.denominator, 12)
    else:
        approx = "~" + float_text(0.0, digits, 12) if digits is not None else "an expression"
    return (f"{approx} (exact value of {len(value):,} characters, with numbers of more than 60 digits: "
            "pgverify check --json prints it)")


_RATIONAL_TEXT = re.compile(r"-?\d+(/\d+)?")
