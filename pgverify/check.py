"""``check``: one public function over the three engines, with one result type."""
from __future__ import annotations

import sys
import copy
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import sympy

from .algebra import NUMERIC_DIGITS, Algebra, choose_mode
from .casefile import load_case
from .compare import PROOF_ORDER, TOLERANCE_DIGITS, compare, equal
from .engines import ENGINES
from .engines.base import EngineResult
from .gcpause import gc_paused
from .errors import EngineError, PgVerifyError, UsageError
from .model import Case
from .pointroute import choose_route, compare_pair, run_matrix, trajectory_too_large
from .printing import FACTOR_TERMS, element_string, element_terms, exact_float, exact_normal, omit_long
from .terms import FamilyReport, REPORTED_FAMILIES, acts_only_through_the_action, deterministic_policy_gradient, family_reports

__all__ = ["check", "Result", "Quantity", "EXPRESSION_LIMIT", "MODES"]

#: What ``check(mode=...)`` accepts: "auto" chooses; "at-point" chooses among the point's number
#: systems; "exact" and "certified" force one.
MODES = ("auto", "symbolic", "at-point", "exact", "certified")

#: Longest expression or value string put in the JSON of an automatic-mode result (longer ones are
#: left out: null, with an ``expression_omitted`` / ``value_omitted`` note).  With ``mode="symbolic"``
#: (``--symbolic``) nothing is left out.
EXPRESSION_LIMIT = 20_000
#: Longest exact value (digits) printed in a result; longer ones are left out (null), their float
#: and 50 digits kept (an exact value of a 1000-state chain can have tens of thousands of digits).
VALUE_LIMIT = 2_000


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
    #: certified mode: a rigorous bound on |float - exact value| (the exact value is not known)
    bound: float | None = None

    #: builds ``sympy_expression`` on first use (large expressions); not a field
    _build_expression = None

    def to_dict(self, limit: int | None = None):
        """``{expression, value, float}``; with ``limit``, longer strings are null and an
        ``expression_omitted`` / ``value_omitted`` entry gives their length and how to get them."""
        out = omit_long({"expression": self.expression, "value": self.value, "float": self.float}, limit)
        if self.bound is not None:
            out["bound"] = self.bound
        return out


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
    #: sequence cases: the LLM estimators named in check's estimators (pgverify.sequence.analyse), or None
    sequence_estimators: object = field(default=None, repr=False)
    #: why this mode (number system) was chosen
    mode_reason: str | None = None
    #: certified mode: rigorous bounds on |float - exact| of the objective and the gradient
    bound: dict | None = None
    #: when the tangent engine ran along random directions instead of one column per parameter
    tangent: dict | None = None
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
            **({"estimators": self.sequence_estimators.to_dict()["estimators"]}
               if self.sequence_estimators is not None else {}),
            "mode_reason": self.mode_reason,
            **({"bound": self.bound} if self.bound is not None else {}),
            **({"tangent": self.tangent} if self.tangent is not None else {}),
        }

    def gradient_floats(self) -> list[float]:
        return [self.gradient[p].float for p in self.parameters]


def _dpg_check(alg: Algebra, values: list, families: dict, names: list[str]) -> dict:
    """Compare the deterministic policy gradient with the dynamics + reward families, parameter by parameter.

    The zero test is the engines' own (:func:`pgverify.compare.equal`): exactly zero in the field
    (symbolic, or exact rationals at the point), else below 1e-50 relative in 60-digit arithmetic.  The
    field's test is one-sided: generators such as sqrt(k) and sqrt(c*k) are independent in it, so a
    difference that is zero as a function can fail it and then goes to the 60-digit test, as the
    engines' comparisons do.  ``proof`` is the weakest proof used; ``differences`` holds |DPG - families|
    at the point for every parameter, and ``failed`` the parameters that disagree.
    """
    proofs, differences, failed = [], {}, []
    for j, p in enumerate(names):
        ok, proof, diff = equal(alg, values[j], families["dynamics"][j] + families["reward"][j], None)
        differences[p] = diff
        if ok:
            proofs.append(proof)
        else:
            failed.append(p)
    same = not failed
    return {"equals": "dynamics + reward families", "agree": same,
            "proof": (max(proofs, key=PROOF_ORDER.index) if same and proofs else
                      (proof_name(alg.mode) if same else None)),
            "max_difference": max(differences.values(), default=0.0),
            "differences": differences, "failed": failed}


def proof_name(mode: str) -> str:
    """The proof that an exact zero test in this algebra's mode gives."""
    return {"symbolic": "symbolic", "exact-at-point": "exact-at-point"}.get(mode, "numeric-50-digits")


class _int_digits_unlimited:
    """Lift Python's limit on printing integers of more than 4300 digits for one printing."""

    def __enter__(self):
        self.old = getattr(sys, "get_int_max_str_digits", lambda: None)()
        if self.old is not None:
            sys.set_int_max_str_digits(0)

    def __exit__(self, *exc):
        if self.old is not None:
            sys.set_int_max_str_digits(self.old)


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
        elif (abs(int(exact.p)).bit_length() + int(exact.q).bit_length()) > 3.33 * VALUE_LIMIT:
            value = None  # longer than the limit: not printed (its float and 50 digits are kept)
        else:
            with _int_digits_unlimited():  # Python refuses to print ints over 4300 digits by default
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
    progress=None,
) -> Result:
    """Compute J and grad J exactly with every engine, and prove that they agree.

    Parameters
    ----------
    case : Case or path
        A validated case, or the path of a case file.
    at : mapping, optional
        Parameter values to use instead of the case's point (names -> exact values).
    mode : {"auto", "symbolic", "at-point", "exact", "certified"}
        "auto" builds symbolic expressions for small cases with few parameters and
        works at the point otherwise; at the point, the number system is chosen by
        :func:`pgverify.pointroute.choose_route` (exact rationals, 60-digit reals on small
        irrational cases, or certified float64), unless "exact" or "certified" forces one.
        ``Result.mode_reason`` says why.
    engines : tuple of str
        Which engines to run ("bellman" always runs: it is the reference).
    force : bool
        Enumerate trajectories even when there are more than the limit.
    progress : callable, optional
        Called with the name of each phase as it starts (the CLI shows it on standard error);
        ``check`` itself never prints.
    monte_carlo : dict, optional
        Sample and test the estimators: keywords of
        :func:`pgverify.montecarlo.check.monte_carlo` (``episodes``: a number or "auto",
        ``seed``, ``estimators``, ``group``, ``alpha``, ``max_steps``, ``budget``).  ``verified``
        is then false when sampling contradicts the exact results.

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
    with gc_paused():  # results of large cases are millions of small objects (see pgverify.gcpause)
        return _check(case, at, mode, engines, force, trajectory_limit, monte_carlo, progress)


def _check(case, at, mode, engines, force, trajectory_limit, monte_carlo, progress) -> Result:
    t0 = time.perf_counter()
    if not isinstance(case, Case):
        case = load_case(case)
    if at:
        case = case.at(at)
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise UsageError(f"unknown engine(s) {', '.join(unknown)}: choose from {', '.join(ENGINES)}")
    chosen = choose_mode(case) if mode == "auto" else mode
    warnings = [w.format(case.source) for w in case.warnings]
    names = case.parameter_names
    alg = None
    say = progress or (lambda phase: None)
    if chosen == "symbolic":
        too_big = symbolic_out_of_reach(case)
        if too_big:
            raise UsageError(f"{case.name}: symbolic expressions are out of reach: {too_big}; use --at-point "
                             "(exact rationals or certified float64 at the point)")
        say("building the rational function field")
        try:
            alg = Algebra(case, "symbolic")
            route = "symbolic"
            reason = ("asked for (--symbolic)" if mode == "symbolic" else
                      f"{len(names)} parameter{'s' if len(names) != 1 else ''} and {len(case.nonterminal)} "
                      "non-terminal states: expressions in theta")
        except ValueError as exc:
            if mode == "symbolic":
                raise PgVerifyError(f"{case.name}: cannot build symbolic expressions: {exc}") from None
            warnings.append(f"symbolic expressions not built ({exc}); computed at the point")
            chosen = "at-point"
    chain = None
    if chosen != "symbolic":
        say("compiling the chain at the point")
        route, reason, chain = choose_route(case, "auto" if chosen == "at-point" else chosen)
        if route == "numeric":
            alg = Algebra(case, "numeric")
        elif route == "exact":
            alg = Algebra(case, "exact-at-point")
    results: dict[str, EngineResult] = {}
    not_run: dict[str, str] = {}
    bounds = None
    if route in ("symbolic", "numeric"):
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
    else:
        say(f"solving: tangent and adjoint engines ({route})")
        results = run_matrix(chain)
        ref_name = "bellman" if results["bellman"].grad is not None else "occupancy"
        comparisons = compare_pair(alg, results, names)
        if "trajectory" not in engines:
            not_run["trajectory"] = "not requested"
        elif route == "certified":
            not_run["trajectory"] = ("the case is computed in float64 with certified bounds; the trajectory "
                                     "sum runs only in exact or 60-digit arithmetic")
        elif (too_large := trajectory_too_large(chain)) is not None:
            not_run["trajectory"] = too_large
        else:
            try:
                results["trajectory"] = ENGINES["trajectory"](case, alg, force=force, limit=trajectory_limit)
            except EngineError as exc:
                not_run["trajectory"] = str(exc)
            if "trajectory" in results:
                more, _, _ = compare(alg, {ref_name: results[ref_name], "trajectory": results["trajectory"]},
                                     names, reference=ref_name, families=True)
                comparisons += more
        agree = all(c.ok for c in comparisons)
        proof = "exact-at-point" if route == "exact" else "certified"
        # the tangent engine along random directions gives no per-parameter gradient: the adjoint's is reported
        results = {"bellman": results["bellman"], **{k: v for k, v in results.items() if k != "bellman"}}
    say("the families and the output")
    symbolic = route == "symbolic"
    ref_name = "bellman" if results["bellman"].grad is not None else "occupancy"
    ref = results[ref_name]
    dpg, dpg_check = {}, None
    if route == "certified":
        objective, gradient, terms, misses, bounds = _certified_outputs(chain, ref, names)
        if case.mu is not None:
            warnings.append("the deterministic policy gradient is not computed in certified mode")
    else:
        objective = _quantity(alg, ref.J, symbolic)
        gradient = {p: _quantity(alg, ref.grad[j], symbolic) for j, p in enumerate(names)}
        terms = family_reports(case, alg, ref.families, lambda x: _quantity(alg, x, symbolic))
        misses = {p: _quantity(alg, ref.grad[j] - ref.families["policy"][j], symbolic)
                  for j, p in enumerate(names)}
        occ = results.get("occupancy")
        if case.mu is not None and occ is not None and "weights" not in occ.info:
            occ = ENGINES["occupancy"](case, alg)  # the DPG reads the occupancy engine's weights
        values = deterministic_policy_gradient(case, alg, occ)
        if values is not None:
            dpg = {p: _quantity(alg, values[j], symbolic) for j, p in enumerate(names)}
            if acts_only_through_the_action(case):
                dpg_check = _dpg_check(alg, values, ref.families, names)
                agree = agree and dpg_check["agree"]
    methods: dict = {}
    for name in ENGINES:
        res = results.get(name)
        if res is None:
            methods[name] = None
        elif res.grad is None:  # the tangent along random directions
            methods[name] = {p: None for p in names}
        elif route == "certified":
            methods[name] = {p: float(res.grad[j].v) for j, p in enumerate(names)}
        else:
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
    elif proof == "certified":
        tolerance = "within the sum of the two engines' certified bounds (float64, rigorous error bounds)"
    tangent = None
    if "directions" in results["bellman"].info:
        tangent = {"form": "random directions", "directions": len(results["bellman"].info["directions"]),
                   "entries": "integers uniform in [-2^20, 2^20] (numpy PCG64, seed 0)",
                   "vectors": results["bellman"].info["directions"] if len(names) <= 50 else None,
                   "why": "one tangent column per parameter is over the work budget; the adjoint gives the "
                          "full gradient and the tangent checks it along each direction"}
    printed: dict = {}  # a tabular case's 3e5 parameters share a few point values: print each once
    at_str = {p.name: printed.get(id(case.point[p])) or printed.setdefault(id(case.point[p]), str(case.point[p]))
              for p in case.parameters}
    result = Result(
        case=case.name, parameters=names, at=at_str, objective=objective, gradient=gradient,
        methods=methods, not_run=not_run, agree=agree, proof=proof, verified=verified, mode=(alg.mode if alg is not None else "certified"),
        tolerance=tolerance, comparisons=comparisons, engines=results, truncation=truncation,
        warnings=warnings, seconds=time.perf_counter() - t0, algebra=alg, source=case.source,
        terms=terms, score_function_misses=misses, dpg=dpg, dpg_check=dpg_check,
        mode_reason=reason, bound=bounds, tangent=tangent,
        expression_limit=None if mode == "symbolic" else EXPRESSION_LIMIT,
    )
    if monte_carlo is not None and not names:
        result.warnings.append("the case has no parameters, so there is no gradient to sample: "
                               "Monte Carlo skipped")
    elif monte_carlo is not None:
        from .montecarlo.check import monte_carlo as run_monte_carlo

        from .pointvalues import NotFinite

        say("Monte Carlo")
        try:
            result.monte_carlo = run_monte_carlo(case, result, **{"started": t0, **monte_carlo})
        except NotFinite as exc:  # sampling is in float64: a value beyond its range cannot be sampled
            result.warnings.append(f"Monte Carlo skipped: sampling works in float64, and {exc} "
                                   "(the exact results stand)")
        else:
            result.verified = result.verified and result.monte_carlo.consistent
        result.seconds = time.perf_counter() - t0
    return result


#: Symbolic expressions are refused up front beyond these sizes (the rational functions grow
#: with the states and the parameters: the chain N = 300, k = 4 runs out of 8 GB).
SYMBOLIC_LIMITS = {"states": 2000, "parameters": 64, "state_steps": 100_000}


def symbolic_out_of_reach(case) -> str | None:
    """Why symbolic expressions cannot be built in reasonable time and memory, or None."""
    n, S = len(case.parameters), len(case.nonterminal)
    if n > SYMBOLIC_LIMITS["parameters"]:
        return f"{n} parameters (the limit is {SYMBOLIC_LIMITS['parameters']})"
    if S > SYMBOLIC_LIMITS["states"]:
        return f"{S} non-terminal states (the limit is {SYMBOLIC_LIMITS['states']})"
    if case.horizon is not None and case.horizon * S > SYMBOLIC_LIMITS["state_steps"]:
        return (f"horizon x states = {case.horizon} x {S} (the limit is "
                f"{SYMBOLIC_LIMITS['state_steps']:,})")
    return None


def _certified_outputs(chain, ref, names):
    """Objective, gradient, families and bounds of a certified (float64) result.

    The engines' per-parameter results are read once into arrays (value, bound) and the per-parameter
    objects are made from plain floats (3e5 parameters x 5 families at 10^5 states)."""
    from .montecarlo.certified import ETA, ROUND
    from .pointroute import certified_value

    def arrays(xs):
        vals = [certified_value(x) for x in xs]
        return (np.fromiter((v for v, _ in vals), float, len(vals)),
                np.fromiter((e for _, e in vals), float, len(vals)))

    v, e = certified_value(ref.J)
    objective = Quantity(None, None, v, bound=e)
    gv, ge = arrays(ref.grad)
    gradient = {p: Quantity(None, None, x, bound=b) for p, x, b in zip(names, gv.tolist(), ge.tolist())}
    coo = {"start": chain.d_rho0, "policy": chain.d_pi, "dynamics": chain.d_P, "reward": chain.d_r}
    terms = {}
    policy = None
    for f in REPORTED_FAMILIES + (("discount",) if chain.d_gamma else ()):
        entries = coo.get(f)
        pointwise = (not chain.d_gamma) if f == "discount" else len(entries) == 0
        witness = None
        if not pointwise:
            witness = (f"d gamma/d{names[next(iter(chain.d_gamma))]} != 0" if f == "discount" else
                       f"d {_place(chain, f, int(entries.idx[0]))}/d{names[int(entries.par[0])]} = "
                       f"{float(entries.val[0]):.6g} at the point")
        report = FamilyReport(f, pointwise, witness)
        fv, fe = arrays(ref.families[f])
        if f == "policy":
            policy = (fv, fe)
        report.contribution = {p: {"expression": None, "identically_zero": pointwise,
                                   "zero_at_point": pointwise or (x == 0.0 and b == 0.0),
                                   "value": None, "float": x, "bound": b}
                               for p, x, b in zip(names, fv.tolist(), fe.tolist())}
        terms[f] = report
    if policy is None:
        policy = arrays(ref.families["policy"])
    # grad - policy family, with the bound of a rounded subtraction (as Bounded's)
    dv = gv - policy[0]
    de = ge + policy[1] + ROUND * np.abs(dv) + ETA
    misses = {p: Quantity(None, None, x, bound=b) for p, x, b in zip(names, dv.tolist(), de.tolist())}
    bounds = {"objective": objective.bound, "gradient": {p: g.bound for p, g in gradient.items()}}
    return objective, gradient, terms, misses, bounds


def _place(chain, family, k):
    """A readable name of entry k of a family's ingredient."""
    if family == "start":
        return f"rho0({chain.states[k]})"
    if family == "policy":
        return f"pi({chain.pair_action[k]}|{chain.states[chain.pair_state[k]]})"
    pair = int(chain.tr_pair[k])
    s, a = chain.states[chain.pair_state[pair]], chain.pair_action[pair]
    nxt = int(chain.tr_next[k])
    s2 = chain.states[nxt] if nxt >= 0 else "(terminal)"
    return f"P({s2}|{s},{a})" if family == "dynamics" else f"r({s},{a},{s2})"
