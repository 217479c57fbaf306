"""``check``: one public function over the three engines, with one result type."""
from __future__ import annotations

import time
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
from .terms import acts_only_through_the_action, deterministic_policy_gradient, family_reports

__all__ = ["check", "Result", "Quantity", "EXPRESSION_LIMIT"]

#: Longest expression string put in a result (longer ones are left out: null).
EXPRESSION_LIMIT = 20_000


@dataclass
class Quantity:
    """An exact quantity: its expression in theta (symbolic mode), its exact value at the point, its float."""

    expression: str | None
    value: str | None
    float: float
    sympy_expression: sympy.Expr | None = field(default=None, repr=False)
    sympy_value: sympy.Expr | None = field(default=None, repr=False)
    digits: str | None = None  # the value to 50 significant digits

    def to_dict(self):
        return {"expression": self.expression, "value": self.value, "float": self.float}


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

    def to_dict(self) -> dict:
        return {
            "case": self.case,
            "parameters": list(self.parameters),
            "at": dict(self.at),
            "objective": self.objective.to_dict(),
            "gradient": {p: q.to_dict() for p, q in self.gradient.items()},
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
            "terms": {f: r.to_dict() for f, r in self.terms.items()},
            "score_function_misses": {p: q.to_dict() for p, q in self.score_function_misses.items()},
            "deterministic_policy_gradient": ({p: q.to_dict() for p, q in self.dpg.items()} if self.dpg else None),
            "dpg_check": self.dpg_check,
            **({"monte_carlo": self.monte_carlo.to_dict()} if self.monte_carlo is not None else {}),
            **({"cross_check": self.cross_check} if self.cross_check else {}),
        }

    def gradient_floats(self) -> list[float]:
        return [self.gradient[p].float for p in self.parameters]


def proof_name(mode: str) -> str:
    """The proof that an exact zero test in this algebra's mode gives."""
    return {"symbolic": "symbolic", "exact-at-point": "exact-at-point"}.get(mode, "numeric-50-digits")


def _quantity(alg: Algebra, x, symbolic: bool) -> Quantity:
    """The expression (symbolic mode), exact value and float of one domain element.

    The float is taken from the simplified exact value where there is one, so an
    exact 0 prints as 0.0 and not as the rounding residue of an unsimplified form.
    """
    exact, num = alg.at_point(x)
    expr_str, expr = None, None
    if symbolic:
        expr = alg.to_expr(x)
        try:
            if sympy.count_ops(expr) < 400:
                expr = sympy.factor(expr)
        except Exception:  # factoring is cosmetic; keep the unfactored form
            pass
        s = str(expr)
        expr_str = s if len(s) <= EXPRESSION_LIMIT else None
    value = None
    if exact is not None:
        if not exact.is_Rational:
            try:
                if sympy.count_ops(exact) < 200:
                    exact = sympy.nsimplify(exact)
            except Exception:  # simplification is cosmetic
                pass
            num = sympy.N(exact, NUMERIC_DIGITS)
        s = str(exact)
        value = s if len(s) <= EXPRESSION_LIMIT else None
    digits = sympy.N(num, TOLERANCE_DIGITS)
    return Quantity(expr_str, value, float(num), expr, exact, str(digits))


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
