"""Agreement of the engines, and how it was proved.

Proofs, strongest first:

``symbolic``
    the difference of two engines' results is zero in the rational function
    field (an identity in theta);
``exact-at-point``
    the difference is exactly zero at the point, in exact rationals;
``numeric-50-digits``
    the difference is below 1e-50 relative (both computed with 60 digits);
``within-bound``
    a truncated (inexact) engine is within its rigorous remainder bound;
``inconclusive``
    a truncated engine whose bound is infinite or not smaller than the value
    itself: no disagreement, but nothing shown either (it never counts as a proof).

A disagreement is never averaged away: one failed comparison makes ``agree`` false.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from .algebra import Algebra
from .engines.base import EngineResult

__all__ = ["Comparison", "compare", "equal", "PROOF_ORDER", "TOLERANCE_DIGITS"]

PROOF_ORDER = ("symbolic", "exact-at-point", "numeric-50-digits", "within-bound", "inconclusive")
TOLERANCE_DIGITS = 50


@dataclass
class Comparison:
    """One quantity compared between two engines."""

    engines: tuple  # (reference, other)
    quantity: str  # "J" or "d/d<param>" or "<family> d/d<param>"
    ok: bool
    proof: str | None  # how equality was established (None when it failed)
    difference: float  # |a - b| at the point


def _equal(alg: Algebra, a, b, bound: float | None, alg_b: Algebra | None = None):
    """(ok, proof, |difference| at the point)."""
    if alg_b is not None and alg_b is not alg:  # different domains: compare at the point
        aexact, anum = alg.at_point(a)
        bexact, bnum = alg_b.at_point(b)
        dabs = abs(anum - bnum)
        if bound is not None:
            ok = bool(dabs <= _bounded_tolerance(bound, anum, alg, alg_b))
            return ok, (_bounded_proof(bound, anum) if ok else None), float(dabs)
        if aexact is not None and bexact is not None and aexact.is_Rational and bexact.is_Rational:
            ok = aexact == bexact
            return ok, ("exact-at-point" if ok else None), float(abs(aexact - bexact))
        tol = sympy.Float(10) ** (-TOLERANCE_DIGITS) * max(sympy.Float(1), abs(anum))
        ok = bool(dabs <= tol)
        return ok, ("numeric-50-digits" if ok else None), float(dabs)
    diff = a - b
    if bound is None and alg.is_zero(diff):
        proof = {"symbolic": "symbolic", "exact-at-point": "exact-at-point"}.get(alg.mode, None)
        if proof is not None:
            return True, proof, 0.0
    _, dnum = alg.at_point(diff)
    _, anum = alg.at_point(a)
    dabs = abs(dnum)
    if bound is not None:
        ok = bool(dabs <= _bounded_tolerance(bound, anum, alg))
        return ok, (_bounded_proof(bound, anum) if ok else None), float(dabs)
    tol = sympy.Float(10) ** (-TOLERANCE_DIGITS) * max(sympy.Float(1), abs(anum))
    if dabs <= tol:
        return True, "numeric-50-digits", float(dabs)
    return False, None, float(dabs)


#: the zero test of the engines' comparisons, for other comparisons that must use the same one
#: (the deterministic policy gradient against the dynamics + reward families)
equal = _equal


def _bounded_proof(bound, anum) -> str:
    """'within-bound', or 'inconclusive' when the bound is infinite or no smaller than the value."""
    if bound == float("inf") or (anum != 0 and sympy.Float(bound) >= abs(anum)):
        return "inconclusive"
    return "within-bound"


def _bounded_tolerance(bound, anum, *algebras):
    """A truncation bound, plus the rounding allowance of any numeric algebra involved."""
    tol = sympy.Float(bound) * (1 + sympy.Float("1e-12"))
    if any(a.mode == "numeric" for a in algebras):
        tol += sympy.Float(10) ** (-TOLERANCE_DIGITS) * max(sympy.Float(1), abs(anum))
    return tol


def compare(alg: Algebra, results: dict[str, EngineResult], names: list[str], reference: str = "bellman",
            families: bool = False):
    """Compare every engine that ran with the reference engine.

    Returns (comparisons, agree, proof): the proof is the weakest one used among
    the exact engines (a truncated engine's "within-bound" is reported in its
    comparisons but does not weaken the proof of the exact ones).
    """
    ref = results[reference]
    out: list[Comparison] = []
    for name, res in results.items():
        if name == reference:
            continue
        pairs = [("J", ref.J, res.J, res.bound["J"] if res.bound else None)]
        for j, p in enumerate(names):
            pairs.append((f"d/d{p}", ref.grad[j], res.grad[j], res.bound["grad"][j] if res.bound else None))
        if families and ref.families and res.families and res.exact:
            for f in ref.families:
                for j, p in enumerate(names):
                    pairs.append((f"{f} d/d{p}", ref.families[f][j], res.families[f][j], None))
        for quantity, a, b, bound in pairs:
            ok, proof, diff = _equal(alg, a, b, bound, res.algebra)
            out.append(Comparison((reference, name), quantity, ok, proof, diff))
    agree = all(c.ok for c in out)
    exact_proofs = [c.proof for c in out if c.ok and c.proof not in ("within-bound", "inconclusive")]
    if exact_proofs:
        proof = max(exact_proofs, key=PROOF_ORDER.index)
    elif alg.mode == "symbolic":
        proof = "symbolic"
    else:
        proof = {"exact-at-point": "exact-at-point", "numeric": "numeric-50-digits"}[alg.mode]
    return out, agree, proof
