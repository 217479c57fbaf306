"""The rational function field QQ(x_1, ..., x_n) on python-flint's multivariate polynomials.

sympy's own fraction fields (``ZZ.frac_field``) are written in Python; every
cancellation is a Python gcd of dict-based polynomials.  python-flint's
``fmpz_mpoly`` does the same arithmetic in C (FLINT).  This module wraps it in the
small interface the engines use: ``zero``, ``one``, ``gens``, field operations,
exact equality, partial derivatives, and conversion from and to sympy.  Elements
are kept in a canonical form (numerator and denominator coprime, the
denominator's leading coefficient positive), so equality is equality of
rational functions and a difference is zero exactly when it is the zero function.

On the benchmark chain with N = 100 states and k = 4 parameters, this is about a
thousand times faster than ``ZZ.frac_field`` (see ``benchmarks/``).
"""
from __future__ import annotations

from fractions import Fraction

import flint
import sympy
from sympy import ZZ

__all__ = ["FlintField", "available"]


def available() -> bool:
    return hasattr(flint, "fmpz_mpoly_ctx")


class FlintField:
    """QQ(gens) with elements :class:`RF` (``gens``: sympy Symbols)."""

    def __init__(self, gens):
        self.symbols = tuple(gens)
        names = tuple(f"x{i}" for i in range(len(self.symbols)))
        self.ctx = flint.fmpz_mpoly_ctx.get(names, "lex")
        self._sympy_field = ZZ.frac_field(*self.symbols)
        self._zero_poly = self.ctx.from_dict({})
        self._one_poly = self.ctx.from_dict({(0,) * len(names): 1})
        self.zero = RF(self, self._zero_poly, self._one_poly)
        self.one = RF(self, self._one_poly, self._one_poly)
        self.gens = tuple(RF(self, g, self._one_poly) for g in self.ctx.gens())

    def __repr__(self):
        return f"QQ({', '.join(map(str, self.symbols))}) [python-flint]"

    def __eq__(self, other):
        return isinstance(other, FlintField) and other.symbols == self.symbols

    def __hash__(self):
        return hash(self.symbols)

    # conversions ----------------------------------------------------------------
    def _poly(self, sympy_poly):
        return self.ctx.from_dict({tuple(m): int(c) for m, c in sympy_poly.terms()})

    def from_sympy(self, expr) -> "RF":
        f = self._sympy_field.from_sympy(sympy.sympify(expr))
        return RF.make(self, self._poly(f.numer), self._poly(f.denom))

    def _poly_to_sympy(self, p):
        terms = []
        for monom, c in p.to_dict().items():
            t = sympy.Integer(int(c))
            for s, e in zip(self.symbols, monom):
                if e:
                    t *= s ** int(e)
            terms.append(t)
        return sympy.Add(*terms)

    def to_sympy(self, x: "RF"):
        return self._poly_to_sympy(x.n) / self._poly_to_sympy(x.d)

    def evaluate(self, x: "RF", values) -> Fraction:
        """x at rational values of the generators (a list of Fractions, in order).

        In C (python-flint's ``fmpq_mpoly``) where available: the Python loop over the terms
        took half a second on the benchmark chain's gradient (N = 100, k = 2).
        """
        if hasattr(flint, "fmpq_mpoly"):
            vs = [flint.fmpq(int(v.numerator), int(v.denominator)) for v in values]
            den = flint.fmpq_mpoly(x.d)(*vs)
            if den == 0:
                raise ZeroDivisionError("the denominator vanishes at the point")
            r = flint.fmpq_mpoly(x.n)(*vs) / den
            return Fraction(int(r.p), int(r.q))
        return _eval(x.n, values) / _eval(x.d, values)


def evaluate_balls(x: "RF", values):
    """x at ball values of the generators (python-flint ``arb``, in order): an ``arb`` enclosing
    the exact value (Horner-free: one product of powers per term, in the balls' precision)."""
    def poly(p):
        total = flint.arb(0)
        for monom, c in zip(p.monoms(), p.coeffs()):
            t = flint.arb(int(c))
            for v, e in zip(values, monom):
                if e:
                    t *= v ** int(e)
            total += t
        return total

    den = poly(x.d)
    if den.contains(0):
        raise ZeroDivisionError("the denominator is not certainly non-zero at the point")
    return poly(x.n) / den


def _eval(p, values) -> Fraction:
    total = Fraction(0)
    for monom, c in p.to_dict().items():
        t = Fraction(int(c))
        for v, e in zip(values, monom):
            if e:
                t *= v ** int(e)
        total += t
    return total


class RF:
    """An element n/d of a :class:`FlintField` (canonical: gcd(n, d) = 1, lc(d) > 0)."""

    __slots__ = ("field", "n", "d")

    def __init__(self, field, n, d):
        self.field, self.n, self.d = field, n, d

    @staticmethod
    def make(field, n, d) -> "RF":
        if d.is_zero():
            raise ZeroDivisionError("division by the zero rational function")
        if n.is_zero():
            return field.zero
        g = n.gcd(d)
        if not g.is_one():
            n, d = n / g, d / g
        if d.leading_coefficient() < 0:
            n, d = -n, -d
        return RF(field, n, d)

    def __add__(self, o):
        if o.n.is_zero():
            return self
        if self.n.is_zero():
            return o
        if self.d == o.d:
            return RF.make(self.field, self.n + o.n, self.d)
        return RF.make(self.field, self.n * o.d + o.n * self.d, self.d * o.d)

    def __sub__(self, o):
        return self + (-o)

    def __neg__(self):
        return RF(self.field, -self.n, self.d)

    def __mul__(self, o):
        if self.n.is_zero() or o.n.is_zero():
            return self.field.zero
        # cross-cancel first: the products stay smaller
        g1, g2 = self.n.gcd(o.d), o.n.gcd(self.d)
        n1, d2 = (self.n / g1, o.d / g1) if not g1.is_one() else (self.n, o.d)
        n2, d1 = (o.n / g2, self.d / g2) if not g2.is_one() else (o.n, self.d)
        n, d = n1 * n2, d1 * d2
        if d.leading_coefficient() < 0:
            n, d = -n, -d
        return RF(self.field, n, d)

    def __truediv__(self, o):
        if o.n.is_zero():
            raise ZeroDivisionError("division by the zero rational function")
        return self * RF(self.field, o.d, o.n) if o.n.leading_coefficient() > 0 else \
            self * RF(self.field, -o.d, -o.n)

    def __eq__(self, o):
        if not isinstance(o, RF):
            return NotImplemented
        return self.n == o.n and self.d == o.d

    def __ne__(self, o):
        eq = self.__eq__(o)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash((str(self.n), str(self.d)))

    def diff(self, gen: "RF") -> "RF":
        """The partial derivative with respect to a generator (an element of ``field.gens``)."""
        i = self.field.gens.index(gen)
        dn, dd = self.n.derivative(i), self.d.derivative(i)
        return RF.make(self.field, dn * self.d - self.n * dd, self.d * self.d)

    def __repr__(self):
        return f"({self.n})/({self.d})"
