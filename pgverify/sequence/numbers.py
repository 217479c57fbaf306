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

import flint
import numpy as np

from ..pointvalues import BALL_PREC, NotFinite, _exact_root, to_float

__all__ = ["ZERO", "ONE", "is_exact", "log", "sqrt", "zeros", "working_precision", "bound", "as_float",
           "as_text", "certainly_zero", "certainly_nonzero"]

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
    """The float64 nearest the exact value (the ball's midpoint)."""
    return to_float(x)[0]


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
