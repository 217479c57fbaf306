r"""Values and first derivatives of a case's expressions at the parameter point.

Forward-mode differentiation on the expression tree (Griewank & Walther 2008, *Evaluating
Derivatives*, ch. 3): every node gives its value at the point and its gradient as a sparse
map ``{parameter index: partial derivative}``.  Each distinct sub-expression is evaluated once
(a cache keyed by the object's identity: the case shares one sympy object between the entries
with the same text), so a tabular case costs one visit per distinct node, not a sympy ``diff`` and a
substitution per entry and parameter.

Two number systems:

``exact``
    python-flint rationals (``fmpq``).  A node whose value is irrational at the point
    (``exp(1)``, ``sqrt(2)``, ``pi``, a softmax at theta != 0) raises :class:`Irrational`; the
    caller then uses balls.  Only identities that hold exactly are used: ``exp(0) = 1``,
    ``log(1) = 0``, ``sin(0) = tanh(0) = 0``, ``cos(0) = 1``, and a rational power whose root
    is rational.
``ball``
    python-flint's ``arb`` balls at :data:`BALL_PREC` bits: every value and derivative is an
    interval guaranteed to contain the exact number (Johansson 2017, *Arb: efficient
    arbitrary-precision midpoint-radius interval arithmetic*).  :func:`to_float` turns a ball
    into a float64 midpoint and a rigorous bound on its distance from the exact value.
"""
from __future__ import annotations

import math

import flint
import sympy

__all__ = ["Irrational", "PointEvaluator", "BALL_PREC", "to_float"]

#: Working precision of the ball evaluation (bits); far above float64's 53, so that the
#: rounding to float64 dominates the error of every entry.
BALL_PREC = 160


class Irrational(ArithmeticError):
    """An expression's value (or derivative) at the point is not rational."""


class NotFinite(ArithmeticError):
    """An expression is not finite at the point (division by zero, log of 0, overflow)."""


def _fmpq(x: sympy.Rational) -> flint.fmpq:
    return flint.fmpq(int(x.p), int(x.q))


def _exact_root(q: flint.fmpq, n: int):
    """The rational n-th root of q, or None."""
    if q < 0:
        if n % 2 == 0:
            return None
        r = _exact_root(-q, n)
        return None if r is None else -r
    p, d = q.p, q.q
    rp, rd = p.root(n), d.root(n)
    if rp ** n == p and rd ** n == d:
        return flint.fmpq(rp, rd)
    return None


class PointEvaluator:
    """Evaluate expressions and their gradients at the point.

    Parameters
    ----------
    params : sequence of sympy.Symbol
        The parameters, in order (gradients are indexed by position).
    point : mapping Symbol -> sympy number
        Their values.
    kind : {"exact", "ball"}
    prec : int
        Bits of the balls (kind "ball").

    Examples
    --------
    >>> import sympy
    >>> p = sympy.Symbol("p", real=True)
    >>> ev = PointEvaluator([p], {p: sympy.Rational(1, 3)})
    >>> ev.eval(p**2 / (1 - p))
    (1/6, {0: 5/4})
    """

    def __init__(self, params, point, kind: str = "exact", prec: int = BALL_PREC):
        if kind not in ("exact", "ball"):
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.prec = prec  # bits of the balls
        self.params = tuple(params)
        self.index = {p: j for j, p in enumerate(self.params)}
        self._cache: dict = {}
        self._given = point
        self._point = {}  # parameter -> its value in this number system (on first use)
        # at an irrational point (theta = log 2) sympy's own substitution may still give rationals
        # (exp(log 2) = 2): then an expression that fails here is substituted and differentiated by sympy
        self._sympy_fallback = kind == "exact" and any(not point[p].is_Rational for p in self.params)

    # -- numbers ---------------------------------------------------------------------
    def _constant(self, e: sympy.Expr):
        """The value of an expression without parameters."""
        if e.is_Rational:
            v = _fmpq(e)
            return v if self.kind == "exact" else flint.arb(v)
        v, _ = self.eval(e)
        return v

    def _num(self, x):
        """A rational constant in this number system."""
        return x if self.kind == "exact" else flint.arb(x)

    # -- the walk --------------------------------------------------------------------
    def eval(self, e: sympy.Expr):
        """(value, {j: d value / d theta_j}) of ``e`` at the point (zero partials left out)."""
        hit = self._cache.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        if self.kind == "ball":
            with flint.ctx.workprec(self.prec):
                out = self._eval(e)
        elif self._sympy_fallback:
            try:
                out = self._eval(e)
            except Irrational:
                out = self._by_substitution(e)
        else:
            out = self._eval(e)
        self._cache[id(e)] = (e, out)
        return out

    def _by_substitution(self, e):
        """Value and gradient by sympy's substitution of the point (which simplifies exp(log 2) = 2)."""
        point = {p: self._given[p] for p in e.free_symbols if p in self._given}
        v = e.xreplace(point)
        if not v.is_Rational:
            raise Irrational(f"{e} is irrational at the point")
        grad = {}
        for p in e.free_symbols:
            if p not in self.index:
                continue
            d = sympy.diff(e, p).xreplace(point)
            if not d.is_Rational:
                raise Irrational(f"a derivative of {e} is irrational at the point")
            if d != 0:
                grad[self.index[p]] = _fmpq(d)
        return _fmpq(v), grad

    def _eval(self, e):
        # keyed by identity (the case shares one object per distinct text; equal objects made
        # apart are evaluated again), the object kept with its value so that its id stays its own
        hit = self._cache.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        out = self._node(e)
        self._cache[id(e)] = (e, out)
        return out

    def _node(self, e):
        if e.is_Rational:
            return self._num(_fmpq(e)), {}
        if e.is_Symbol:
            j = self.index.get(e)
            if j is None:
                raise ValueError(f"unexpected symbol {e} in a case expression")
            if e not in self._point:
                self._point[e] = self._constant(self._given[e])
            return self._point[e], {j: self._num(flint.fmpq(1))}
        if e.is_Add:
            v, g = None, {}
            for t in e.args:
                tv, tg = self._eval(t)
                v = tv if v is None else v + tv
                for j, x in tg.items():
                    g[j] = g[j] + x if j in g else x
            return v, g
        if e.is_Mul:
            v, g = None, {}
            for t in e.args:
                tv, tg = self._eval(t)
                if v is None:
                    v, g = tv, dict(tg)
                    continue
                # (u w)' = u' w + u w'
                g = {j: x * tv for j, x in g.items()}
                for j, x in tg.items():
                    g[j] = g[j] + v * x if j in g else v * x
                v = v * tv
            return v, g
        if e.is_Pow:
            return self._pow(*e.args)
        if isinstance(e, sympy.exp):
            u, du = self._eval(e.args[0])
            v = self._exp(u)
            return v, {j: v * x for j, x in du.items()}
        if isinstance(e, sympy.log):
            u, du = self._eval(e.args[0])
            v = self._log(u)
            return v, {j: x / u for j, x in du.items()}
        if isinstance(e, (sympy.sin, sympy.cos)):
            u, du = self._eval(e.args[0])
            s, c = self._sincos(u)
            if isinstance(e, sympy.sin):
                return s, {j: c * x for j, x in du.items()}
            return c, {j: -s * x for j, x in du.items()}
        if isinstance(e, sympy.tanh):
            u, du = self._eval(e.args[0])
            v = self._tanh(u)
            return v, {j: (1 - v * v) * x for j, x in du.items()}
        if isinstance(e, sympy.Float):
            return self._num(flint.fmpq(*sympy.Rational(e).as_numer_denom())), {}
        if e.is_number:
            return self._irrational_constant(e), {}
        raise ValueError(f"pgverify cannot evaluate {e}")

    def _pow(self, base, ex):
        b, db = self._eval(base)
        if ex.is_Integer:
            k = int(ex)
            if k < 0 and self._is_zero(b):
                raise NotFinite(f"division by zero in {base}**{k}")
            v = b ** k
            if not db:
                return v, {}
            c = k * b ** (k - 1)
            return v, {j: c * x for j, x in db.items()}
        if ex.is_Rational:
            p, q = int(ex.p), int(ex.q)
            if self.kind == "exact":
                root = _exact_root(b, q)
                if root is None:
                    raise Irrational(f"{base}**({ex}) is irrational at the point")
                if p < 0 and root == 0:
                    raise NotFinite(f"division by zero in {base}**({ex})")
                v = root ** p
            else:
                if b < 0 or (p < 0 and self._is_zero(b)):
                    raise NotFinite(f"{base}**({ex}) is not a finite real number at the point")
                v = b.root(q) ** p if not b.is_zero() else flint.arb(0)
            if not db:
                return v, {}
            if self._is_zero(b):
                raise NotFinite(f"the derivative of {base}**({ex}) is infinite at the point")
            c = self._num(flint.fmpq(p, q)) * v / b
            return v, {j: c * x for j, x in db.items()}
        # b**x = exp(x log b), evaluated directly (sympy would turn exp(x*log(b)) back into b**x)
        x, dx = self._eval(ex)
        lb = self._log(b)
        v = self._exp(x * lb)
        g = {j: v * d * lb for j, d in dx.items()}
        for j, d in db.items():
            g[j] = g.get(j, 0) + v * x * d / b
        return v, g

    # -- elementary functions, exact where the value is rational -------------------------
    def _is_zero(self, x) -> bool:
        return x == 0 if self.kind == "exact" else x.is_zero()

    def _exp(self, u):
        if self.kind == "exact":
            if u == 0:
                return flint.fmpq(1)
            raise Irrational("exp of a non-zero rational is irrational")
        v = u.exp()
        if not v.is_finite():
            raise NotFinite("exp overflows")
        return v

    def _log(self, u):
        if self.kind == "exact":
            if u == 1:
                return flint.fmpq(0)
            if u <= 0:
                raise NotFinite("log of a number that is not positive")
            raise Irrational("log of a rational other than 1 is irrational")
        if not u > 0:
            raise NotFinite("log of a number that is not (certainly) positive")
        return u.log()

    def _sincos(self, u):
        if self.kind == "exact":
            if u == 0:
                return flint.fmpq(0), flint.fmpq(1)
            raise Irrational("sin and cos of a non-zero rational are irrational")
        return u.sin(), u.cos()

    def _tanh(self, u):
        if self.kind == "exact":
            if u == 0:
                return flint.fmpq(0)
            raise Irrational("tanh of a non-zero rational is irrational")
        return u.tanh()

    def _irrational_constant(self, e):
        if self.kind == "exact":
            raise Irrational(f"{e} is irrational")
        if e is sympy.pi:
            return flint.arb.pi()
        if e is sympy.E:
            return flint.arb(1).exp()
        raise ValueError(f"pgverify cannot evaluate the constant {e}")


def to_float(x) -> tuple[float, float]:
    """(midpoint as float64, bound on |exact - midpoint|) of an exact rational or an arb ball.

    Raises :class:`NotFinite` when the value is beyond float64's range or the ball is not finite.
    """
    if isinstance(x, flint.fmpq):
        try:
            f = float(x.p) / float(x.q) if abs(x.p) < 2**1000 and x.q < 2**1000 else float(flint.arb(x))
        except OverflowError:
            raise NotFinite("a value beyond float64's range") from None
        if not math.isfinite(f):
            raise NotFinite("a value beyond float64's range")
        # the division rounds once, each conversion once: a relative 3u, plus underflow
        return f, 3.0000001 * 2.0**-53 * abs(f) + 2.0**-1074
    if not x.is_finite():
        raise NotFinite("a value that is not finite at the point")
    mid = x.mid()
    f = float(mid)
    if not math.isfinite(f):
        raise NotFinite("a value beyond float64's range")
    rad = float(x.rad())
    # float() of the radius and of the midpoint each round to nearest: inflate both
    return f, rad * (1 + 2.0**-50) + 2.0**-53 * abs(f) * (1 + 2.0**-50) + 2.0**-1074
