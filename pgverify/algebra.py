"""Where the engines compute: a sympy domain, and each ingredient's value and derivatives in it.

The engines never differentiate anything themselves.  They read, for every
ingredient x of the case (rho0, pi, P, r, gamma), its value ``val(x)`` and its
partial derivatives ``d(x)[j]`` with respect to each parameter theta_j, as
elements of one sympy domain, and combine them with field operations only
(sums, products, and exact sparse Gaussian elimination in :meth:`Algebra.solve`).

Three modes:

``symbolic``
    The domain is the rational function field QQ(theta, atoms), on python-flint's
    multivariate polynomials (:mod:`pgverify.flintfield`; sympy's ``ZZ.frac_field`` if
    python-flint lacks them).  Atoms are the
    transcendental pieces of the case's expressions, normalised so that known
    identities hold in the field: ``exp(2*t - u) = E_t**2 / E_u`` with one atom
    ``E_t = exp(t/d)`` per parameter, ``log`` of a rational function is split
    into logs of its irreducible factors (and ``log(E_t) = t/d``),
    ``x**(p/q)`` is ``R**p`` with ``R = x**(1/q)``, sin and cos come in pairs,
    tanh and sigmoid are rewritten.  The derivative of a field element is the
    chain rule over the generators, d f / d theta_j = sum_g (df/dg) (dg/dtheta_j),
    where each atom's derivative is again in the field.
``exact-at-point``
    The domain is QQ: every value and derivative at the point is rational
    (for example a softmax at theta = 0), so everything is exact and fast.
``numeric``
    Values at the point to :data:`NUMERIC_DIGITS` significant digits
    (sympy's RealField); comparisons then state a tolerance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import sympy
from sympy import QQ, ZZ, RealField

from . import flintfield
from .model import Case

__all__ = ["Algebra", "NUMERIC_DIGITS", "choose_mode", "MODES"]

MODES = ("symbolic", "exact-at-point", "numeric")
NUMERIC_DIGITS = 60  # working precision of the numeric mode (comparisons use 50 digits)
#: At an irrational point, a symbolic result's exact value (an expression in exp(1/3), ...) is built
#: only for elements of at most this many terms; larger ones give their 60 digits
EXACT_VALUE_TERMS = 60


def choose_mode(case: Case) -> str:
    """Symbolic for small cases with few parameters, else at the point.

    Symbolic expressions are built when there are at most 6 parameters, at most
    400 non-terminal states and (with a horizon) at most 4000 state-steps.
    """
    n = len(case.nonterminal)
    if len(case.parameters) <= 6 and n <= 400 and (case.horizon is None or case.horizon * n <= 4000):
        return "symbolic"
    return "at-point"


# ---------------------------------------------------------------------------
# Normalisation of expressions into rational functions of generators
# ---------------------------------------------------------------------------
@dataclass
class _Atom:
    symbol: sympy.Symbol  # the generator
    expr: sympy.Expr  # what it stands for, in the parameters
    deriv_fn: object  # param -> normalised expression of d(atom)/d(param)


class _Normaliser:
    """Rewrites expressions as rational functions of parameters and atom symbols."""

    def __init__(self, params, all_exprs, point=None):
        self.params = tuple(params)
        self.point = point
        self.pset = set(params)
        self.atoms: dict[object, _Atom] = {}
        self.by_symbol: dict[sympy.Symbol, _Atom] = {}
        self.derivs: dict[tuple, sympy.Expr] = {}  # (atom symbol, param) -> normalised expr
        # one exp atom per parameter: exp(theta/d) with d the lcm of the denominators used
        self.exp_den: dict[sympy.Symbol, int] = {}
        for e in all_exprs:
            for ex in e.atoms(sympy.exp):
                lin, _const, _rest = self._split_linear(sympy.expand(ex.args[0]))
                for p, c in lin.items():
                    self.exp_den[p] = math.lcm(self.exp_den.get(p, 1), int(sympy.Rational(c).q))

    # atoms ---------------------------------------------------------------------
    def _atom(self, key, expr, label, deriv_fn):
        if key not in self.atoms:
            sym = sympy.Symbol(f"_{label}{len(self.atoms)}")
            atom = _Atom(sym, expr, deriv_fn)
            self.atoms[key] = atom
            self.by_symbol[sym] = atom
        return self.atoms[key].symbol

    def _sym(self, key):
        return self.atoms[key].symbol

    def atom_deriv(self, g, p):
        """d(atom g)/d(p), normalised (cached; may create further atoms)."""
        k = (g, p)
        if k not in self.derivs:
            self.derivs[k] = sympy.sympify(self.by_symbol[g].deriv_fn(p))
        return self.derivs[k]

    def finish(self):
        """Compute every atom's derivatives; a derivative may add atoms, so loop until none do."""
        done = 0
        while done < len(self.atoms):
            atoms = list(self.atoms.values())
            for atom in atoms[done:]:
                for p in self.params:
                    self.atom_deriv(atom.symbol, p)
            done = len(atoms)

    def _split_linear(self, u):
        lin, const, rest = {}, sympy.Integer(0), []
        for term in sympy.Add.make_args(u):
            c, t = term.as_coeff_Mul()
            if t in self.pset and c.is_Rational:
                lin[t] = lin.get(t, 0) + c
            elif term.is_Rational:
                const += term
            else:
                rest.append(term)
        return lin, const, sympy.Add(*rest)

    # main rewrite ----------------------------------------------------------------
    def norm(self, e: sympy.Expr) -> sympy.Expr:
        if e.is_Rational or e in self.pset:
            return e
        if e.is_Symbol:
            raise ValueError(f"unexpected symbol {e} in a case expression")
        if e.is_Add:
            return sympy.Add(*[self.norm(t) for t in e.args])
        if e.is_Mul:
            return sympy.Mul(*[self.norm(t) for t in e.args])
        if e.is_Pow:
            base, ex = e.args
            if ex.is_Integer:
                return self.norm(base) ** ex
            if ex.is_Rational:
                return self._root(self.norm(base), ex.q) ** ex.p
            if base == sympy.E:
                return self._exp(sympy.expand(ex))
            # b**x = exp(x log b), built as the exp atom directly: sympy turns exp(x*log(b)) back
            # into b**x, and normalising that again never ends (2**exp(10) raised RecursionError)
            return self._exp(sympy.expand(ex * sympy.log(base)))
        if isinstance(e, sympy.exp):
            return self._exp(sympy.expand(e.args[0]))
        if isinstance(e, sympy.log):
            return self._log(self.norm(e.args[0]))
        if isinstance(e, (sympy.sin, sympy.cos)):
            s, c = self._sincos(self.norm(e.args[0]))
            return s if isinstance(e, sympy.sin) else c
        if isinstance(e, sympy.tanh):
            u = self.norm(e.args[0])
            key = ("tanh", u)
            return self._atom(key, e, "T", lambda p: (1 - self._sym(key) ** 2) * self.diff_norm(u, p))
        if e is sympy.E:
            return self._exp(sympy.Integer(1))
        if e.is_number:  # a constant sympy produced (e.g. pi): a generator with derivative 0
            return self._atom(("const", e), e, "C", lambda p: 0)
        raise ValueError(f"pgverify cannot represent {e} exactly")

    def _exp(self, u):
        lin, const, rest = self._split_linear(u)
        out = sympy.Integer(1)
        for p, c in lin.items():
            d = self.exp_den.get(p, 1)
            key = ("exp", p, d)
            sym = self._atom(key, sympy.exp(p / d), "E",
                             lambda q, p=p, d=d, key=key: self._sym(key) / d if q == p else 0)
            out *= sym ** int(c * d)
        if const != 0:
            out *= self._atom(("exp", const), sympy.exp(const), "E", lambda q: 0)
        if rest != 0:
            nrest = self.norm(rest)
            key = ("exp", nrest)
            out *= self._atom(key, sympy.exp(rest), "E", lambda q: self._sym(key) * self.diff_norm(nrest, q))
        return out

    def _log(self, f):
        """log of a rational function of generators, split into logs of irreducible factors."""
        num, den = sympy.fraction(sympy.together(f))
        out = sympy.Integer(0)
        for part, sign in ((num, 1), (den, -1)):
            coeff, factors = sympy.factor_list(sympy.expand(part))
            c = sympy.Rational(coeff)
            # orient each factor to be positive at the point (log(1 - p) is log of -(p - 1))
            oriented = []
            for fac, k in factors:
                if self.point is not None and sympy.N(self.denorm(fac).xreplace(self.point), 30) < 0:
                    fac = sympy.expand(-fac)
                    if k % 2:
                        c = -c
                oriented.append((fac, k))
            factors = oriented
            if c < 0:
                raise ValueError("log of a quantity that is negative at the point")
            for integer, s2 in ((c.p, sign), (c.q, -sign)):
                for prime, k in _factor_integer(integer).items():
                    out += s2 * k * self._atom(("log", prime), sympy.log(prime), "L", lambda q: 0)
            for fac, k in factors:
                out += sign * k * self._log_irreducible(fac)
        return out

    def _log_irreducible(self, fac):
        atom = self.by_symbol.get(fac)
        if atom is not None and isinstance(atom.expr, sympy.exp):
            # log(exp(u)) = u for real u, normalised (u = sin(t) must become the sin atom)
            return self.norm(sympy.expand(atom.expr.args[0]))
        key = ("log", fac)
        return self._atom(key, sympy.log(self.denorm(fac)), "L", lambda q: self.diff_norm(fac, q) / fac)

    def _root(self, f, q):
        key = ("root", f, q)
        return self._atom(key, self.denorm(f) ** sympy.Rational(1, q), "R",
                          lambda p: self._sym(key) * self.diff_norm(f, p) / (q * f))

    def _sincos(self, u):
        ks, kc = ("sin", u), ("cos", u)
        ue = self.denorm(u)
        self._atom(ks, sympy.sin(ue), "S", lambda p: self._sym(kc) * self.diff_norm(u, p))
        self._atom(kc, sympy.cos(ue), "Co", lambda p: -self._sym(ks) * self.diff_norm(u, p))
        return self._sym(ks), self._sym(kc)

    # derivatives of normalised expressions ----------------------------------------
    def diff_norm(self, f, p):
        """d f / d p for a normalised expression f (chain rule over generators)."""
        f = sympy.sympify(f)
        out = sympy.diff(f, p) if p in f.free_symbols else sympy.Integer(0)
        for g in f.free_symbols:
            if g in self.by_symbol:
                dg = self.atom_deriv(g, p)
                if dg != 0:
                    out += sympy.diff(f, g) * dg
        return out

    def denorm(self, f):
        """Back to an expression in the parameters."""
        f = sympy.sympify(f)
        subs = {a.symbol: a.expr for a in self.atoms.values() if a.symbol in f.free_symbols}
        return f.xreplace(subs) if subs else f


# ---------------------------------------------------------------------------
# The algebra the engines use
# ---------------------------------------------------------------------------
class Algebra:
    """Values and derivatives of a case's ingredients in one sympy domain.

    Parameters
    ----------
    case : Case
    mode : {"symbolic", "at-point", "exact-at-point", "numeric"}
        "at-point" picks "exact-at-point" when every value and derivative at the
        point is rational, else "numeric".
    """

    def __init__(self, case: Case, mode: str = "symbolic"):
        self.case = case
        self.params = tuple(case.parameters)
        self._cache: dict = {}
        if mode == "symbolic":
            self._init_symbolic()
        elif mode in ("at-point", "exact-at-point", "numeric"):
            self._init_point(mode)
        else:
            raise ValueError(f"unknown mode {mode!r}")

    # -- symbolic ----------------------------------------------------------------
    def _init_symbolic(self):
        self.mode = "symbolic"
        exprs = list(self.case.expressions())
        self.norm = _Normaliser(self.params, exprs, self.case.point)
        normed = {}
        for e in exprs:
            if e not in normed:
                normed[e] = self.norm.norm(e)
        self.norm.finish()
        gens = list(self.params) + [a.symbol for a in self.norm.atoms.values()]
        if not gens:
            gens = [sympy.Symbol("_unused")]
        if flintfield.available():
            self.domain = flintfield.FlintField(gens)  # QQ(gens) in C (FLINT)
        else:  # pragma: no cover - python-flint is a dependency; this is the pure-Python fallback
            self.domain = ZZ.frac_field(*gens)  # = QQ(gens); over ZZ, cancelling needs no ring conversions
        self.gens = gens
        self._gen_elems = dict(zip(gens, self.domain.gens))
        self._normed = normed
        # derivative of each generator w.r.t. each parameter, in the field
        self._dgen = {}
        for g in gens:
            row = []
            for p in self.params:
                if g == p:
                    row.append(self.domain.one)
                elif g in self.norm.by_symbol:
                    row.append(self.domain.from_sympy(self.norm.atom_deriv(g, p)))
                else:
                    row.append(self.domain.zero)
            self._dgen[g] = row

    def _init_point(self, mode):
        """Values and derivatives at the point: exact rationals by forward-mode evaluation
        (:mod:`pgverify.pointvalues`, each distinct expression once), else 60-digit reals."""
        from .pointvalues import Irrational, NotFinite, PointEvaluator

        self._point_values = {}
        self._evaluator = None
        if mode in ("at-point", "exact-at-point"):
            ev = PointEvaluator(self.params, self.case.point, "exact")
            try:
                for e in self.case.expressions():
                    ev.eval(e)
                self._evaluator = ev
                mode = "exact-at-point"
            except (Irrational, NotFinite):
                if mode == "exact-at-point":
                    raise ValueError("values at the point are not all rational; use the numeric mode") from None
                mode = "numeric"
        if mode == "numeric":
            for e in self.case.expressions():
                if e in self._point_values:
                    continue
                v = self._exact_at_point(e)
                ds = [self._exact_at_point(sympy.diff(e, p)) if p in e.free_symbols else sympy.Integer(0)
                      for p in self.params]
                self._point_values[e] = (v, ds)
        self.mode = mode
        self.domain = QQ if mode == "exact-at-point" else RealField(dps=NUMERIC_DIGITS)

    def _exact_at_point(self, e):
        return e.xreplace(self.case.point) if e.free_symbols else e

    # -- the engines' interface -------------------------------------------------------
    @property
    def zero(self):
        return self.domain.zero

    @property
    def one(self):
        return self.domain.one

    def of(self, e: sympy.Expr):
        """The value of an ingredient expression, in the domain."""
        key = ("v", e)
        if key not in self._cache:
            if self.mode == "symbolic":
                n = self._normed.get(e)
                if n is None:
                    n = self.norm.norm(e)
                self._cache[key] = self.domain.from_sympy(n)
            elif self._evaluator is not None:
                self._cache[key] = self._evaluator.eval(e)[0]
            else:
                v = self._point_values[e][0] if e in self._point_values else self._exact_at_point(e)
                self._cache[key] = self._convert(v)
        return self._cache[key]

    def d(self, e: sympy.Expr) -> list:
        """The partial derivatives of an ingredient expression w.r.t. each parameter."""
        key = ("d", e)
        if key not in self._cache:
            if self.mode == "symbolic":
                f = self.of(e)
                out = [self.domain.zero] * len(self.params)
                for g in self.gens:
                    dg = self._dgen[g]
                    if all(x == self.domain.zero for x in dg):
                        continue
                    part = f.diff(self._gen_elems[g])
                    if part == self.domain.zero:
                        continue
                    for j, x in enumerate(dg):
                        if x != self.domain.zero:
                            out[j] = out[j] + part * x
                self._cache[key] = out
            elif self._evaluator is not None:
                grad = self._evaluator.eval(e)[1]
                self._cache[key] = [grad.get(j, QQ.zero) for j in range(len(self.params))]
            else:
                if e in self._point_values:
                    ds = self._point_values[e][1]
                else:
                    ds = [self._exact_at_point(sympy.diff(e, p)) for p in self.params]
                self._cache[key] = [self._convert(x) for x in ds]
        return self._cache[key]

    def is_zero(self, x) -> bool:
        return x == self.domain.zero

    def _convert(self, v):
        if self.domain == QQ:
            return QQ(int(v.p), int(v.q))
        return self.domain.from_sympy(sympy.N(v, NUMERIC_DIGITS + 10))

    def solve(self, A_rows, B_rows):
        """Solve A X = B exactly in the domain (sparse Gaussian elimination, then back substitution).

        The matrices of MDPs are sparse (a state reaches few others), so rows are dicts and
        eliminating in the natural order keeps the fill small; the pivot is the diagonal entry
        when it is not zero, else the first row below with a non-zero entry in the column.
        DomainMatrix's own ``lu_solve`` converts to a dense matrix first, which costs far more
        on the fraction field.
        """
        n = len(A_rows)
        zero = self.domain.zero
        rows = [{j: x for j, x in enumerate(r) if x != zero} for r in A_rows]
        rhs = [{j: x for j, x in enumerate(r) if x != zero} for r in B_rows]
        m = len(B_rows[0]) if B_rows else 0
        # column -> rows (below the current pivot) holding an entry in it
        where: dict[int, set] = {}
        for i, r in enumerate(rows):
            for j in r:
                where.setdefault(j, set()).add(i)
        perm = list(range(n))  # perm[k] = row used as the k-th pivot
        for k in range(n):
            pr = perm[k]
            if rows[pr].get(k, zero) == zero:
                cands = sorted(i for i in where.get(k, ()) if perm.index(i) > k)
                if not cands:
                    raise ZeroDivisionError("the linear system is singular")
                other = perm.index(cands[0])
                perm[k], perm[other] = perm[other], perm[k]
                pr = perm[k]
            prow, pb = rows[pr], rhs[pr]
            inv = self.domain.one / prow[k]
            for i in sorted(where.get(k, ())):
                if i == pr or perm.index(i) < k:
                    continue
                row = rows[i]
                f = row.pop(k) * inv
                where[k].discard(i)
                for j, x in prow.items():
                    if j == k:
                        continue
                    y = row.get(j, zero) - f * x
                    if y == zero:
                        row.pop(j, None)
                        where[j].discard(i)
                    else:
                        row[j] = y
                        where.setdefault(j, set()).add(i)
                b = rhs[i]
                for j, x in pb.items():
                    y = b.get(j, zero) - f * x
                    if y == zero:
                        b.pop(j, None)
                    else:
                        b[j] = y
        X = [[zero] * m for _ in range(n)]
        for k in range(n - 1, -1, -1):
            pr = perm[k]
            prow = rows[pr]
            inv = self.domain.one / prow[k]
            for c in range(m):
                acc = rhs[pr].get(c, zero)
                for j, x in prow.items():
                    if j != k and X[j][c] != zero:
                        acc = acc - x * X[j][c]
                X[k][c] = acc * inv if acc != zero else zero
        return X

    # -- back to numbers and expressions ------------------------------------------
    def to_expr(self, x) -> sympy.Expr | None:
        """A sympy expression in the parameters (symbolic mode), else None."""
        if self.mode != "symbolic":
            return None
        return self.norm.denorm(self.domain.to_sympy(x))

    def at_point(self, x):
        """(exact sympy value or None, 50+ digit sympy Float) of a domain element at the point."""
        if self.mode == "exact-at-point":
            v = sympy.Rational(int(x.numerator), int(x.denominator))
            return v, sympy.Float(v, NUMERIC_DIGITS)
        if self.mode == "numeric":
            return None, sympy.Float(self.domain.to_sympy(x), NUMERIC_DIGITS)
        # symbolic: substitute the point into the generators
        values = {}
        rational = True
        for g in self.gens:
            if g in self.case.point:
                values[g] = self.case.point[g]
            elif g in self.norm.by_symbol:
                values[g] = self.norm.by_symbol[g].expr.xreplace(self.case.point)
            else:
                values[g] = sympy.Integer(0)
            rational = rational and values[g].is_Rational
        if rational and isinstance(self.domain, flintfield.FlintField):
            f = self.domain.evaluate(x, [Fraction(int(values[g].p), int(values[g].q)) for g in self.gens])
            v = sympy.Rational(f.numerator, f.denominator)
            return v, sympy.Float(v, NUMERIC_DIGITS)
        if rational:
            ring = x.numer.ring.clone(domain=QQ)
            num, den = x.numer.set_ring(ring), x.denom.set_ring(ring)
            pairs = [(rg, QQ.from_sympy(values[g])) for rg, g in zip(ring.gens, self.gens)]
            nv = num.evaluate(pairs) if pairs else num
            dv = den.evaluate(pairs) if pairs else den
            v = sympy.Rational(ring.domain.to_sympy(nv)) / sympy.Rational(ring.domain.to_sympy(dv))
            return v, sympy.Float(v, NUMERIC_DIGITS)
        if isinstance(self.domain, flintfield.FlintField):
            # irrational point: the value in ball arithmetic straight from the polynomials (converting
            # a large element to sympy and substituting took seconds per value), the exact expression
            # only for small elements
            ball = self._ball_value(x)
            if ball is not None:
                num = sympy.Float(ball.mid().str(NUMERIC_DIGITS + 5, radius=False), NUMERIC_DIGITS)
                small = len(x.n.coeffs()) + len(x.d.coeffs()) <= EXACT_VALUE_TERMS
                expr = self.domain.to_sympy(x).xreplace(values) if small else None
                return expr, num
        expr = self.domain.to_sympy(x).xreplace(values)
        return expr, sympy.N(expr, NUMERIC_DIGITS)

    def _ball_value(self, x):
        """x at the point as an ``arb`` ball accurate to well beyond 60 digits, or None."""
        import flint

        from .pointvalues import PointEvaluator

        with flint.ctx.workprec(400):
            if getattr(self, "_gen_balls", None) is None:
                ev = PointEvaluator(self.params, self.case.point, "ball", prec=400)
                try:
                    balls = []
                    for g in self.gens:
                        if g in self.case.point:
                            balls.append(ev.eval(g)[0])
                        elif g in self.norm.by_symbol:
                            balls.append(ev.eval(self.norm.by_symbol[g].expr)[0])
                        else:
                            balls.append(flint.arb(0))
                except (ArithmeticError, ValueError):
                    balls = False
                self._gen_balls = balls
            if not self._gen_balls:
                return None
            try:
                v = flintfield.evaluate_balls(x, self._gen_balls)
            except ZeroDivisionError:
                return None
            if not v.is_finite() or (v.rad() > abs(v.mid()) * flint.arb(10) ** -(NUMERIC_DIGITS + 5)
                                     and v.rad() > flint.arb(10) ** -(NUMERIC_DIGITS + 60)):
                return None  # not accurate enough: the sympy route decides
            return v


#: Integers up to this many bits are factored completely for logs of rationals (log 12 = 2 log 2 +
#: log 3); larger ones only by trial division (factoring 10**999 + 1 does not end).
FACTOR_BITS = 64
_SMALL_PRIMES = None


def _factor_integer(n: int) -> dict:
    """n's factorisation for the logs of the field: complete up to :data:`FACTOR_BITS` bits, else the
    primes below 10^4 and the cofactor left (an atom of its own: distinct representations of one
    logarithm are then told apart by the numeric zero test, not by the field)."""
    n = int(n)
    if n.bit_length() <= FACTOR_BITS:
        return sympy.factorint(n)
    global _SMALL_PRIMES
    if _SMALL_PRIMES is None:
        _SMALL_PRIMES = list(sympy.primerange(2, 10_000))
    out = {}
    for p in _SMALL_PRIMES:
        if n % p == 0:
            k = 0
            while n % p == 0:
                n //= p
                k += 1
            out[p] = k
    if n > 1:
        if n.bit_length() <= FACTOR_BITS:
            for q, k in sympy.factorint(n).items():
                out[q] = out.get(q, 0) + k
        else:
            out[n] = out.get(n, 0) + 1
    return out
