"""``check``: one public function over the three engines, with one result type."""
from __future__ import annotations

import copy
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import sympy

from .algebra import NUMERIC_DIGITS, Algebra, choose_mode
from .casefile import load_case
from .compare import TOLERANCE_DIGITS, compare
from .engines import ENGINES
from .engines.base import EngineResult
from .errors import EngineError, PgVerifyError, UsageError
from .model import Case
from .printing import FACTOR_TERMS, element_string, element_terms, exact_float, exact_normal, omit_long
from .terms import acts_only_through_the_action, deterministic_policy_gradient, family_reports

__all__ = ["check", "Result", "Quantity", "EXPRESSION_LIMIT"]

#: Longest expression or value string put in the JSON of an automatic-mode result (longer ones are
#: left out: null, with an ``expression_omitted`` / ``value_omitted`` note).  With ``mode="symbolic"``
#: (``--symbolic``) nothing is left out.
EXPRESSION_LIMIT = 20_000


@dataclass
class Quantity:
    """An exact quantity: its expression in theta (symbolic mode), its exact value at the point, its float.

    ``expression`` and ``value`` are always whole here; ``to_dict(limit)`` (the JSON) leaves out
    strings longer than ``limit`` and says so.  ``sympy_expression`` is built on first use for
    large expressions (they are printed from the field's polynomials, without sympy).
    """

    expression: str | None
    value: str | None
    float: float
    sympy_expression: sympy.Expr | None = field(default=None, repr=False, compare=False)
    sympy_value: sympy.Expr | None = field(default=None, repr=False)
    digits: str | None = None  # the value to 50 significant digits

    #: builds ``sympy_expression`` on first use (large expressions); not a field
    _build_expression = None

    def to_dict(self, limit: int | None = None):
        """``{expression, value, float}``; with ``limit``, longer strings are null and an
        ``expression_omitted`` / ``value_omitted`` entry gives their length and how to get them."""
        return omit_long({"expression": self.expression, "value": self.value, "float": self.float}, limit)


def _get_sympy_expression(self):
    expr = self.__dict__.get("_sympy_expression")
    if expr is None and self._build_expression is not None:
        expr = self._build_expression()
        self.__dict__["_sympy_expression"] = expr
        self._build_expression = None
    return expr


def _set_sympy_expression(self, expr):
    self.__dict__["_sympy_expression"] = expr
    self._build_expression = None


Quantity.sympy_expression = property(_get_sympy_expression, _set_sympy_expression,
                                     doc="The expression as a sympy object (symbolic mode), else None.")


@dataclass
class Result:
    """The outcome of :func:`check` on one case; ``to_dict()`` is the CLI's ``--json`` object."""

    case: str
    parameters: list
    at: dict
    objective: Quantity
    gradient: dict
    methods: dict
    not_run: dict
    agree: bool
    proof: str
    verified: bool
    mode: str
    tolerance: str | None
    comparisons: list
    engines: dict = field(repr=False, default_factory=dict)
    truncation: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    seconds: float = 0.0
    algebra: Algebra | None = field(default=None, repr=False)
    source: str | None = None
    #: family -> FamilyReport (start, policy, dynamics, reward; discount when gamma moves)
    terms: dict = field(default_factory=dict)
    #: param -> Quantity: grad J minus the policy family, what the score-function formula misses
    score_function_misses: dict = field(default_factory=dict)
    #: deterministic policy: param -> Quantity of sum_s d(s) grad mu(s) dQ/da (Silver et al. 2014)
    dpg: dict = field(default_factory=dict)
    #: the comparison of the DPG with the dynamics + reward families (None: not applicable)
    dpg_check: dict | None = None
    #: pgverify.montecarlo.check.MonteCarlo, when sampling was asked for
    monte_carlo: object = None
    #: tool name -> the report of an external cross-check (``pgverify check --cross-check storm``)
    cross_check: dict = field(default_factory=dict)
    #: the JSON leaves out expressions and values longer than this (None: nothing is left out,
    #: as when symbolic expressions were asked for: ``mode="symbolic"``, ``--symbolic``)
    expression_limit: int | None = EXPRESSION_LIMIT

    def to_dict(self) -> dict:
        lim = self.expression_limit
        return {
            "case": self.case,
            "parameters": list(self.parameters),
            "at": dict(self.at),
            "objective": self.objective.to_dict(lim),
            "gradient": {p: q.to_dict(lim) for p, q in self.gradient.items()},
            "methods": {k: (dict(v) if v is not None else None) for k, v in self.methods.items()},
            "not_run": dict(self.not_run),
            "agree": self.agree,
            "proof": self.proof,
            "verified": self.verified,
            "mode": self.mode,
            "tolerance": self.tolerance,
            "truncation": self.truncation,
            "comparisons": [
                {"engines": list(c.engines), "quantity": c.quantity, "ok": c.ok, "proof": c.proof,
                 "difference": c.difference}
                for c in self.comparisons
            ],
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 4),
            "source": self.source,
            "terms": {f: r.to_dict(lim) for f, r in self.terms.items()},
            "score_function_misses": {p: q.to_dict(lim) for p, q in self.score_function_misses.items()},
            "deterministic_policy_gradient": ({p: q.to_dict(lim) for p, q in self.dpg.items()} if self.dpg else None),
            "dpg_check": self.dpg_check,
            **({"monte_carlo": self.monte_carlo.to_dict()} if self.monte_carlo is not None else {}),
            **({"cross_check": self.cross_check} if self.cross_check else {}),
        }

    def gradient_floats(self) -> list[float]:
        return [self.gradient[p].float for p in self.parameters]


def proof_name(mode: str) -> str:
    """The proof that an exact zero test in this algebra's mode gives."""
    return {"symbolic": "symbolic", "exact-at-point": "exact-at-point"}.get(mode, "numeric-50-digits")


#: per algebra: id(element) -> (element, symbolic, Quantity); the families, the score-function misses
#: and the gradient are often the very same elements, printed once
_printed: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _quantity(alg: Algebra, x, symbolic: bool) -> Quantity:
    """The expression (symbolic mode), exact value and float of one domain element.

    The expression is printed by :func:`pgverify.printing.element_string` (small ones factored,
    large ones straight from the field's polynomials).  The exact value is printed as computed
    (small irrational ones in an exact normal form, never replaced by a nearby closed form), and
    its float is evaluated from it to :data:`NUMERIC_DIGITS` correct digits.
    """
    memo = _printed.setdefault(alg, {})
    hit = memo.get(id(x))
    if hit is not None and hit[0] is x and hit[1] == symbolic:
        return copy.copy(hit[2])
    exact, num = alg.at_point(x)
    expr_str, expr, build = None, None, None
    if symbolic:
        if alg.is_zero(x):
            expr_str, expr = "0", sympy.Integer(0)
            exact, num = sympy.Integer(0), sympy.Float(0, NUMERIC_DIGITS)
        else:
            expr_str, expr = element_string(alg, x)
            if expr is None:
                build = (lambda: alg.to_expr(x))
    value = None
    if exact is not None:
        if not exact.is_Rational:
            if alg.mode != "symbolic" or element_terms(alg, x) <= FACTOR_TERMS:
                exact = exact_normal(exact)  # exact rewrites only, and only on small values
            num = exact_float(exact, NUMERIC_DIGITS)
        value = str(exact)
    digits = sympy.N(num, TOLERANCE_DIGITS)
    f = float(num)
    q = Quantity(expr_str, value, f + 0.0 if f == 0 else f, expr, exact, str(digits))
    q._build_expression = build
    memo[id(x)] = (x, symbolic, q)
    return copy.copy(q)


def check(
    case: Case | str | Path,
    at: Mapping | None = None,
    *,
    mode: str = "auto",
    engines: tuple = ("bellman", "trajectory", "occupancy"),
    force: bool = False,
    trajectory_limit: int | None = None,
    monte_carlo: dict | None = None,
) -> Result:
    """Compute J and grad J exactly with every engine, and prove that they agree.

    Parameters
    ----------
    case : Case or path
        A validated case, or the path of a case file.
    at : mapping, optional
        Parameter values to use instead of the case's point (names -> exact values).
    mode : {"auto", "symbolic", "at-point"}
        "auto" builds symbolic expressions for small cases with few parameters and
        works at the point otherwise.
    engines : tuple of str
        Which engines to run ("bellman" always runs: it is the reference).
    force : bool
        Enumerate trajectories even when there are more than the limit.
    monte_carlo : dict, optional
        Sample and test the estimators: keywords of
        :func:`pgverify.montecarlo.check.monte_carlo` (``episodes``, ``seed``, ``estimators``,
        ``group``, ``alpha``).  ``verified`` is then false when sampling contradicts the
        exact results.

    Returns
    -------
    Result

    Examples
    --------
    A coin that pays 1 on "go": J(p) = p and dJ/dp = 1.

    >>> import pgverify
    >>> case = pgverify.Case.from_dict({
    ...     "name": "coin", "parameters": {"p": "1/3"},
    ...     "states": ["S", "G"], "terminal": ["G"], "actions": ["stop", "go"],
    ...     "start": "S", "policy": {"S": {"stop": "1 - p", "go": "p"}},
    ...     "transitions": {"S": {"stop": "G", "go": "G"}}, "rewards": {"S": {"go": 1}}})
    >>> res = pgverify.check(case)
    >>> res.objective.expression, res.objective.value, res.gradient["p"].value
    ('p', '1/3', '1')
    >>> res.verified, res.proof
    (True, 'symbolic')
    """
    t0 = time.perf_counter()
    if not isinstance(case, Case):
        case = load_case(case)
    if at:
        case = case.at(at)
    if mode not in ("auto", "symbolic", "at-point"):
        raise UsageError(f"unknown mode {mode!r}: use 'auto', 'symbolic' or 'at-point'")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise UsageError(f"unknown engine(s) {', '.join(unknown)}: choose from {', '.join(ENGINES)}")
    chosen = choose_mode(case) if mode == "auto" else mode
    warnings = [w.format(case.source) for w in case.warnings]
    try:
        alg = Algebra(case, "symbolic" if chosen == "symbolic" else "at-point")
    except ValueError as exc:
        if mode == "symbolic":
            raise PgVerifyError(f"{case.name}: cannot build symbolic expressions: {exc}") from None
        warnings.append(f"symbolic expressions not built ({exc}); computed at the point")
        alg = Algebra(case, "at-point")
    names = case.parameter_names
    results: dict[str, EngineResult] = {}
    not_run: dict[str, str] = {}
    order = ["bellman"] + [e for e in engines if e != "bellman"]
    for name in order:
        try:
            results[name] = ENGINES[name](case, alg, force=force, limit=trajectory_limit)
        except EngineError as exc:
            not_run[name] = str(exc)
    for name in ENGINES:
        if name not in order:
            not_run[name] = "not requested"
    comparisons, agree, proof = compare(alg, results, names, families=True)
    symbolic = alg.mode == "symbolic"
    ref = results["bellman"]
    objective = _quantity(alg, ref.J, symbolic)
    gradient = {p: _quantity(alg, ref.grad[j], symbolic) for j, p in enumerate(names)}
    terms = family_reports(case, alg, ref.families, lambda x: _quantity(alg, x, symbolic))
    misses = {p: _quantity(alg, ref.grad[j] - ref.families["policy"][j], symbolic) for j, p in enumerate(names)}
    dpg, dpg_check = {}, None
    values = deterministic_policy_gradient(case, alg, results.get("occupancy"))
    if values is not None:
        dpg = {p: _quantity(alg, values[j], symbolic) for j, p in enumerate(names)}
        if acts_only_through_the_action(case):
            pairs = [(values[j], ref.families["dynamics"][j] + ref.families["reward"][j]) for j in range(len(names))]
            diffs = [alg.at_point(a - b)[1] for a, b in pairs]
            same = all(alg.is_zero(a - b) for a, b in pairs) if alg.mode != "numeric" else all(
                abs(x) <= sympy.Float(10) ** (-TOLERANCE_DIGITS) for x in diffs)
            dpg_check = {"equals": "dynamics + reward families", "agree": bool(same),
                         "proof": (proof_name(alg.mode) if same else None),
                         "max_difference": float(max((abs(x) for x in diffs), default=0))}
            agree = agree and bool(same)
    methods: dict = {}
    for name in ENGINES:
        res = results.get(name)
        if res is None:
            methods[name] = None
            continue
        ralg = res.algebra or alg
        methods[name] = {p: _quantity(ralg, res.grad[j], False).float for j, p in enumerate(names)}
    truncation = {}
    for name, res in results.items():
        if not res.exact:
            truncation[name] = {"length": res.info.get("truncated_at"), "bound": res.bound,
                                "trajectories": res.info.get("trajectories")}
    exact_ran = [n for n, r in results.items() if r.exact]
    verified = agree and len(exact_ran) >= 2
    tolerance = None
    if proof == "numeric-50-digits":
        tolerance = f"relative 1e-{TOLERANCE_DIGITS} ({NUMERIC_DIGITS}-digit arithmetic)"
    at_str = {p.name: str(case.point[p]) for p in case.parameters}
    result = Result(
        case=case.name, parameters=names, at=at_str, objective=objective, gradient=gradient,
        methods=methods, not_run=not_run, agree=agree, proof=proof, verified=verified, mode=alg.mode,
        tolerance=tolerance, comparisons=comparisons, engines=results, truncation=truncation,
        warnings=warnings, seconds=time.perf_counter() - t0, algebra=alg, source=case.source,
        terms=terms, score_function_misses=misses, dpg=dpg, dpg_check=dpg_check,
        expression_limit=None if mode == "symbolic" else EXPRESSION_LIMIT,
    )
    if monte_carlo is not None and not names:
        result.warnings.append("the case has no parameters, so there is no gradient to sample: "
                               "Monte Carlo skipped")
    elif monte_carlo is not None:
        from .montecarlo.check import monte_carlo as run_monte_carlo

        result.monte_carlo = run_monte_carlo(case, result, **monte_carlo)
        result.verified = result.verified and result.monte_carlo.consistent
        result.seconds = time.perf_counter() - t0
    return result
