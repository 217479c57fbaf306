r"""Numbers of the sequence estimators: exact rationals where possible, arb balls where not.

Every quantity is a python-flint ``fmpq`` while it is rational; an operation whose result is
irrational (a logarithm of a ratio other than 1, a square root that is not a rational square,
a policy at an irrational point) gives an ``arb`` ball, and anything combined with a ball is a
ball.  A result is *exact* when every entry is an ``fmpq`` and *certified* otherwise: each
ball contains the exact value (Johansson 2017, *Arb: efficient arbitrary-precision
midpoint-radius interval arithmetic*), and :func:`bound` gives the largest distance of the
float64 midpoints from the exact values.

Every computation that may make balls runs inside :func:`working_precision` (the precision of
:data:`pgverify.pointvalues.BALL_PREC`).
"""
from __future__ import annotations

import contextlib
import math

import flint
import numpy as np

from ..pointvalues import BALL_PREC, NotFinite, _exact_root, to_float

__all__ = ["ZERO", "ONE", "is_exact", "log", "sqrt", "zeros", "working_precision", "bound", "as_float",
           "as_text", "certainly_zero", "certainly_nonzero", "upper", "OuterSum"]

ZERO = flint.fmpq(0)
ONE = flint.fmpq(1)


def working_precision():
    """A context with flint's precision at :data:`~pgverify.pointvalues.BALL_PREC` bits."""
    return flint.ctx.workprec(BALL_PREC) if flint.ctx.prec < BALL_PREC else contextlib.nullcontext()


def is_exact(x) -> bool:
    """Whether ``x`` (a number or an array of numbers) holds only exact rationals."""
    if isinstance(x, np.ndarray):
        return all(isinstance(v, (flint.fmpq, flint.fmpz, int)) for v in x.flat)
    return isinstance(x, (flint.fmpq, flint.fmpz, int))


def log(x):
    """log x: exact 0 at x = 1, else a ball."""
    if isinstance(x, flint.fmpq):
        if x == 1:
            return ZERO
        if x <= 0:
            raise NotFinite("log of a number that is not positive")
        return flint.arb(x).log()
    if not x > 0:
        raise NotFinite("log of a number that is not (certainly) positive")
    return x.log()


def sqrt(x):
    """sqrt x: exact where x is the square of a rational, else a ball."""
    if isinstance(x, flint.fmpq):
        r = _exact_root(x, 2)
        return r if r is not None else flint.arb(x).sqrt()
    if x < 0:
        raise NotFinite("square root of a negative number")
    # a ball reaching below 0 (a sum of squares with rounding) keeps only its non-negative part
    return x.nonnegative_part().sqrt() if not x > 0 else x.sqrt()


def zeros(shape) -> np.ndarray:
    """An object array of exact zeros."""
    out = np.empty(shape, dtype=object)
    out.fill(ZERO)
    return out


def certainly_zero(x) -> bool:
    if isinstance(x, flint.fmpq):
        return x == 0
    return x.is_zero()


def certainly_nonzero(x) -> bool:
    if isinstance(x, flint.fmpq):
        return x != 0
    return not x.contains(0)


def as_float(x) -> float:
    """The float64 nearest the exact value (the ball's midpoint).

    ``float`` of an ``fmpq`` divides Python integers (correctly rounded) and of an ``arb`` rounds
    its midpoint; beyond float64's range or for a ball that is not finite,
    :func:`~pgverify.pointvalues.to_float` raises ``NotFinite``.  (The Monte Carlo check converts
    every exact update to floats: this is about 20 times faster than ``to_float``.)
    """
    try:
        f = float(x)
    except OverflowError:
        return to_float(x)[0]
    if not math.isfinite(f) or (not isinstance(x, flint.fmpq) and not x.is_finite()):
        return to_float(x)[0]
    return f


def bound(values) -> float:
    """The largest rigorous bound on |exact - float64| over ``values`` (an iterable of numbers)."""
    b = 0.0
    for v in values:
        b = max(b, to_float(v)[1])
    return b


def as_text(x) -> str:
    """An exact rational as ``p/q``; a ball as arb's ``[mid +/- rad]``."""
    if isinstance(x, flint.fmpq):
        return str(x)
    with working_precision():
        return x.str(20, radius=True)


def upper(x) -> float:
    """A float64 rigorous upper bound on ``|x|`` (exact rational or ball; 0.0 for an exact 0)."""
    if isinstance(x, flint.fmpq) and x == 0:
        return 0.0
    f, err = to_float(x)
    return abs(f) + err


def _float_vector(v, cache: dict) -> np.ndarray:
    hit = cache.get(id(v))
    if hit is None:
        hit = np.array([float(a) for a in v], dtype=float)
        cache[id(v)] = hit
    return hit


def _exact_zero(x) -> bool:
    return x == 0 if isinstance(x, flint.fmpq) else (x.is_exact() and x == 0)


class OuterSum:
    r"""A square matrix kept as an unexpanded sum \sum_m c_m a_m b_m^T + \sum_k h_k H_k.

    The Jacobians of the expected updates are such sums: outer products of score vectors
    (sparse: a token's score involves only its context's parameters) and the tokens' Hessians of
    log pi.  Kept unexpanded, one entry costs one pass over the terms (:meth:`entry`), a float64
    image of the whole matrix one matrix product (:meth:`float_matrix`), and symmetry can be
    proved from the structure (:meth:`structurally_symmetric`) where balls cannot prove a
    difference to be 0.

    Parameters
    ----------
    n : int
        The size.
    hessian : callable
        ``hessian(token)`` -> ``("outer", [(c, s), ...])`` meaning H = \sum c s s^T, or
        ``("dense", M)`` with M the (symmetric) Hessian as an object array.
    """

    def __init__(self, n: int, hessian):
        self.n = n
        self._hessian = hessian
        self.outer: dict = {}  # (id(a), id(b)) -> [c, a, b]
        self.hess: dict = {}  # token key -> [c, token]

    def add_outer(self, c, a, b):
        """Add c a b^T (a, b object vectors, kept by reference)."""
        key = (id(a), id(b))
        e = self.outer.get(key)
        if e is None:
            self.outer[key] = [c, a, b]
        else:
            e[0] = e[0] + c

    def add_hessian(self, c, token):
        """Add c H(token)."""
        e = self.hess.get(token.key)
        if e is None:
            self.hess[token.key] = [c, token]
        else:
            e[0] = e[0] + c

    def add(self, other: "OuterSum", c=ONE):
        """Add c times ``other``."""
        for e in other.outer.values():
            self.add_outer(c * e[0], e[1], e[2])
        for e in other.hess.values():
            self.add_hessian(c * e[0], e[1])

    def _expanded(self):
        """(outer terms [(c, a, b)], dense terms [(c, M)]) with the Hessians expanded."""
        outs = [tuple(e) for e in self.outer.values()]
        dense = []
        for c, tk in self.hess.values():
            kind, val = self._hessian(tk)
            if kind == "outer":
                outs.extend((c * h, s, s) for h, s in val)
            else:
                dense.append((c, val))
        return outs, dense

    def structurally_symmetric(self) -> bool:
        """Whether every term is symmetric (a is b, or a Hessian) or has its transpose with an
        equal exact coefficient: then the matrix is symmetric exactly, whatever the balls."""
        for (ia, ib), (c, a, b) in self.outer.items():
            if a is b:
                continue
            partner = self.outer.get((ib, ia))
            if partner is None or not (is_exact(c) and is_exact(partner[0]) and c == partner[0]):
                return False
        return True

    def float_matrix(self, *, antisymmetric: bool = False) -> np.ndarray:
        """A float64 image of the matrix (or of M - M^T), for screening only: no bound."""
        outs, dense = self._expanded()
        if antisymmetric:
            outs = [t for t in outs if t[1] is not t[2]]
        cache: dict = {}
        n = self.n
        out = np.zeros((n, n))
        if outs:
            A = np.stack([float(c) * _float_vector(a, cache) for c, a, _ in outs])
            B = np.stack([_float_vector(b, cache) for _, _, b in outs])
            out += A.T @ B
        for c, M in dense:
            out += float(c) * np.array([[float(x) for x in row] for row in M], dtype=float)
        return out - out.T if antisymmetric else out

    def entry(self, i: int, j: int):
        """The entry (i, j), exact or a ball."""
        outs, dense = self._expanded()
        tot = ZERO
        for c, a, b in outs:
            x, y = a[i], b[j]
            if _exact_zero(x) or _exact_zero(y):
                continue
            tot = tot + c * x * y
        for c, M in dense:
            tot = tot + c * M[i, j]
        return tot

    def dense(self, *, antisymmetric: bool = False) -> np.ndarray:
        """The whole matrix (or M - M^T) as an object array, exact where every term that reaches
        an entry is exact: the exact terms are multiplied as ``fmpq_mat``, the others as
        ``arb_mat``."""
        outs, dense = self._expanded()
        if antisymmetric:
            outs = [t for t in outs if t[1] is not t[2]]
            dense = []
        n = self.n
        ex = [t for t in outs if is_exact(t[0]) and is_exact(t[1]) and is_exact(t[2])]
        ball = [t for t in outs if not (is_exact(t[0]) and is_exact(t[1]) and is_exact(t[2]))]
        if ex:
            A = flint.fmpq_mat(len(ex), n, [c * x for c, a, _ in ex for x in a])
            B = flint.fmpq_mat(len(ex), n, [x for _, _, b in ex for x in b])
            E = A.transpose() * B
            if antisymmetric:
                E = E - E.transpose()
            out = np.array([[E[i, j] for j in range(n)] for i in range(n)], dtype=object)
        else:
            out = zeros((n, n))
        if ball:
            def arbs(v):
                return [x if not isinstance(x, flint.fmpq) else flint.arb(x) for x in v]

            A = flint.arb_mat(len(ball), n, arbs([c * x for c, a, _ in ball for x in a]))
            B = flint.arb_mat(len(ball), n, arbs([x for _, _, b in ball for x in b]))
            Bm = A.transpose() * B
            # which entries any ball term reaches (elsewhere the ball part is exactly 0)
            pa = np.array([[not _exact_zero(c * x) for x in a] for c, a, _ in ball])
            pb = np.array([[not _exact_zero(x) for x in b] for _, _, b in ball])
            reach = (pa.astype(np.int64).T @ pb.astype(np.int64)) > 0
            if antisymmetric:
                reach = reach | reach.T
            for i in range(n):
                for j in range(n):
                    if reach[i, j]:
                        v = Bm[i, j] - Bm[j, i] if antisymmetric else Bm[i, j]
                        out[i, j] = out[i, j] + v
        for c, M in dense:
            out = out + c * M
        return out
