"""Cross-check J(theta) with Storm, the probabilistic model checker (optional extra ``storm``).

:func:`storm_cross_check` writes the chain that the case's policy induces as a
parametric DTMC (:func:`pgverify.export.prism.to_prism`), lets Storm build it with
rational-function values and compute the expected total reward until "done"
(``R{"r"}=? [ F "done" ]``), which is J(theta) by construction (see
:mod:`pgverify.export.prism` for the encoding of the start distribution, the
discount and the horizon).  Storm answers with a rational function of the
parameters (parametric model checking by state elimination: Dehnert et al. 2015,
"PROPhESY: A PRObabilistic ParamEter SYnthesis Tool", CAV; Hensel et al. 2022,
"The probabilistic model checker Storm", STTT).  Its text is read with pgverify's
own whitelisted expression parser (:func:`pgverify.expr.parse_expression`, after
writing Storm's ``^`` as ``**``), never with ``eval`` or ``sympify``, and compared
with pgverify's J(theta):

- **symbolically**: the difference, brought to one fraction by
  :func:`sympy.cancel`, is the zero polynomial;
- **at the point**: both evaluated exactly at the parameter point.

Negative rewards: Storm's default floating-point engine mishandles them (on the
short corridor at p = 1/2, reward -1 per step, stormpy 2.0.0's default engine
gives -6.87494..., the exact engine -12, the true value).  Here the model is built
with the value type ``RationalFunction`` and checked with Storm's exact parametric
engine, which handles rewards of any sign, so no reward is shifted.

Storm's parametric result holds where the graph of the chain does not change
(every transition written with a non-zero expression stays non-zero), which
includes the parameter point of a valid case.

References
----------
Hensel, Junges, Katoen, Quatmann, Volk (2022). The probabilistic model checker
Storm. International Journal on Software Tools for Technology Transfer 24, 589-610.
"""
from __future__ import annotations

import os
import tempfile
import time

import sympy

from ..errors import PgVerifyError
from ..expr import parse_expression
from ..model import Case
from ..export.errors import MissingExtraError
from ..export.prism import PROPERTY, to_prism

__all__ = ["storm_cross_check", "storm_solution_function", "parse_storm_function", "CrossCheckError"]


class CrossCheckError(PgVerifyError):
    """Storm could not build or check the exported model (Storm's own message is kept)."""


def _import_stormpy():
    try:
        import stormpy
    except ImportError:
        raise MissingExtraError("The Storm cross-check", "stormpy", "storm") from None
    return stormpy


def parse_storm_function(text: str, case: Case) -> sympy.Expr:
    """Storm's rational function (its printed text) as a sympy expression in ``case``'s parameters.

    Storm prints factorised rational functions with ``+ - * /``, parentheses,
    integers and ``^`` for powers, e.g. ``(-2 * (p+(-2)))/((p) * (p+(-1)))``.  The
    text goes through :func:`pgverify.expr.parse_expression` (a whitelist over
    :mod:`ast`), with ``^`` written as ``**``; names other than the parameters are
    an error.

    Examples
    --------
    >>> import pgverify
    >>> case = pgverify.load_case("cases/short_corridor.yaml")
    >>> parse_storm_function("(-2 * (p+(-2)))/((p) * (p+(-1)))", case)
    (4 - 2*p)/(p*(p - 1))
    """
    names = {p.name: p for p in case.parameters}
    try:
        return parse_expression(text.replace("^", "**"), names, context="in Storm's result")
    except PgVerifyError as exc:
        raise CrossCheckError(f"cannot read Storm's result {text!r}: {exc}") from None


def storm_solution_function(case: Case) -> tuple[str, "object"]:
    """Storm's solution function of J(theta) for ``case``: (Storm's text, the stormpy value).

    Raises
    ------
    MissingExtraError
        When stormpy is not installed.
    ExportError
        When the case cannot be written as a parametric DTMC.
    CrossCheckError
        When Storm fails on the model.
    """
    stormpy = _import_stormpy()
    text = to_prism(case)
    fd, path = tempfile.mkstemp(prefix="pgverify-", suffix=".pm")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            program = stormpy.parse_prism_program(path)
            props = stormpy.parse_properties(PROPERTY, program)
            model = stormpy.build_model[stormpy.RationalFunction](program, props)
            result = stormpy.model_checking(model, props[0], only_initial_states=True)
            value = result.get_value(model.initial_states[0])
        except Exception as exc:  # stormpy raises its own exception types; keep Storm's message
            raise CrossCheckError(f"Storm failed on the exported model of {case.name!r}: {exc}") from None
    finally:
        os.unlink(path)
    return str(value), value


def _storm_version(stormpy) -> str:
    try:
        import stormpy.info

        return stormpy.info.storm_version()
    except Exception:  # the version is informative only
        return getattr(stormpy, "__version__", "unknown")


def storm_cross_check(case: Case, result=None) -> dict:
    """Compare pgverify's J(theta) with Storm's solution function, exactly.

    Parameters
    ----------
    case : Case
        A case whose probabilities and rewards are rational functions of the parameters.
    result : pgverify.Result, optional
        A result of :func:`pgverify.check` on ``case``.  Its J(theta) expression and
        its point are used; without one, or when it holds no expression (at-point
        mode), J(theta) is computed with ``check(case, mode="symbolic",
        engines=("bellman",))``.

    Returns
    -------
    dict
        ``tool`` ("storm"), ``version``, ``property`` (the PRISM property checked),
        ``engine``, ``storm_function`` (Storm's text), ``objective`` (Storm's J(theta)
        as pgverify prints expressions), ``pgverify_objective``, ``agrees_symbolically``
        (bool), ``difference`` (Storm minus pgverify, simplified: "0" when they agree),
        ``at`` (name -> value), ``storm_value`` and ``pgverify_value`` (exact, at the
        point), ``agrees_at_point`` (bool), ``reward_shift`` (always null: no shift),
        ``seconds`` (Storm's part, building and checking).

    Raises
    ------
    MissingExtraError, ExportError, CrossCheckError
    """
    stormpy = _import_stormpy()
    from ..check import check

    if result is None or result.objective.sympy_expression is None:
        result = check(case, mode="symbolic", engines=("bellman",))
    J = result.objective.sympy_expression
    if J is None:
        raise CrossCheckError(f"pgverify could not build J(theta) of {case.name!r} as an expression "
                              "(too many parameters for symbolic mode), so there is nothing to compare with Storm")
    t0 = time.perf_counter()
    storm_text, _ = storm_solution_function(case)
    seconds = time.perf_counter() - t0
    storm_J = parse_storm_function(storm_text, case)
    J = J.xreplace({s: case.symbol(s.name) for s in J.free_symbols if s.name in case.parameter_names})
    difference = sympy.cancel(sympy.together(storm_J - J))
    names = {p.name: p for p in case.parameters}
    point = {names[k]: parse_expression(v, {}) for k, v in result.at.items()}
    storm_value = storm_J.subs(point)
    if not storm_value.is_Rational:
        storm_value = sympy.simplify(storm_value)
    pg_value = result.objective.sympy_value
    if pg_value is None:
        pg_value = J.subs(point)
    at_point = sympy.simplify(storm_value - pg_value) == 0
    return {
        "tool": "storm",
        "version": _storm_version(stormpy),
        "property": PROPERTY,
        "engine": "sparse, exact parametric (RationalFunction)",
        "storm_function": storm_text,
        "objective": str(sympy.factor(storm_J)),
        "pgverify_objective": str(result.objective.expression if result.objective.expression is not None else J),
        "agrees_symbolically": bool(difference == 0),
        "difference": str(difference),
        "at": dict(result.at),
        "storm_value": str(storm_value),
        "pgverify_value": str(pg_value),
        "agrees_at_point": bool(at_point),
        "reward_shift": None,
        "seconds": round(seconds, 4),
    }
