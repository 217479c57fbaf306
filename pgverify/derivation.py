"""The derivation of a case's policy gradient, as data for the renderers of ``pgverify derive``.

:func:`derive` runs :func:`~pgverify.check.check` and gathers, with the case's own
expressions: the Bellman recursion of J; the differentiated recursion with each
family's per-step derivative and its fate (vanishes pointwise / vanishes in
expectation / remains); the trajectory view (log p(tau) split, and for small cases a
table of trajectories with p(tau), R(tau) and the score); the occupancy form; the
deterministic policy gradient when the policy is deterministic; and the final
gradient with the engines' agreement.  Renderers (``pgverify.report``) only format it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from .check import Result, check
from .model import DETERMINISTIC_ACTION, Case
from .printing import exact_normal

__all__ = ["Derivation", "derive", "TRAJECTORY_TABLE_LIMIT", "EQUATION_STATE_LIMIT"]

TRAJECTORY_TABLE_LIMIT = 32  # rows of the trajectory table
EQUATION_STATE_LIMIT = 16  # states whose Bellman equations are written out


@dataclass
class Equation:
    """lhs = rhs, with sympy objects (renderers choose str or LaTeX)."""

    lhs: sympy.Expr
    rhs: sympy.Expr
    note: str = ""


@dataclass
class TrajectoryRow:
    path: str  # "S0 -right-> S1 -right-> G"
    p: sympy.Expr  # p(tau) at the point, exact
    R: sympy.Expr  # R(tau) at the point
    score: dict  # param -> grad log p(tau) at the point


@dataclass
class Derivation:
    case: Case
    result: Result
    bellman: list = field(default_factory=list)  # Equation per state
    objective: Equation | None = None
    derivatives: dict = field(default_factory=dict)  # family -> list of (place, param, expr)
    fates: dict = field(default_factory=dict)  # family -> "vanishes pointwise" | ...
    trajectories: list = field(default_factory=list)  # TrajectoryRow
    trajectory_count: int | None = None
    occupancy: dict = field(default_factory=dict)  # state -> exact value of d(s) (no horizon)
    notes: list = field(default_factory=list)
    identities: object = None  # pgverify.identities.IdentityTables


def _sym(name: str) -> sympy.Symbol:
    return sympy.Symbol(name)


def _fate(report) -> str:
    if report.pointwise_zero:
        return "vanishes pointwise"
    contrib = report.contribution.values()
    if contrib and all(c["identically_zero"] for c in contrib):
        return "vanishes in expectation"
    if contrib and all(c["zero_at_point"] for c in contrib):
        return "zero at this point"
    return "remains"


def derive(case: Case, *, mode: str = "auto") -> Derivation:
    """Gather the derivation of ``case``'s gradient (see the module docstring)."""
    res = check(case, mode=mode)
    out = Derivation(case, res)
    gamma = case.gamma
    # 1. the Bellman recursion with the case's own expressions
    Vname = "V_{t+1}" if case.horizon else "V"
    V = {s: sympy.Function(Vname)(_sym(s)) for s in case.states}
    states = [s for s in case.nonterminal]
    for s in states[:EQUATION_STATE_LIMIT]:
        rhs = sympy.Integer(0)
        for a in case.actions[s]:
            if a not in case.pi[s]:
                continue
            inner = sympy.Integer(0)
            for s2, P in case.P[s][a].items():
                r = case.r[s][a].get(s2, sympy.Integer(0))
                cont = gamma * V[s2] if s2 not in case.terminal else sympy.Integer(0)
                inner += P * (r + cont)
            rhs += case.pi[s][a] * inner
        label = "V_t" if case.horizon else "V"
        out.bellman.append(Equation(sympy.Function(label)(_sym(s)), rhs))
    if case.horizon:
        V = {s: sympy.Function("V_0")(_sym(s)) for s in case.states}
    if len(states) > EQUATION_STATE_LIMIT:
        out.notes.append(f"{len(states) - EQUATION_STATE_LIMIT} more states' equations are not written out")
    out.objective = Equation(sympy.Symbol("J"), sympy.Add(*[e * V[s] for s, e in case.rho0.items()]))
    # 2. per-step derivatives of each family, and fates
    from .terms import _ingredients

    for f, report in res.terms.items():
        items = []
        for place, e in _ingredients(case, f):
            for p in case.parameters:
                if p in e.free_symbols:
                    d = sympy.diff(e, p)
                    d = sympy.simplify(d / e if f in ("start", "policy", "dynamics") else d)
                    if d != 0:
                        items.append((place, p.name, d))
            if len(items) > 12:
                break
        out.derivatives[f] = items
        out.fates[f] = _fate(report)
    # 3. trajectories (small, finite cases), at the point
    tr = res.engines.get("trajectory")
    if tr is not None and tr.exact and tr.info.get("trajectories", 10**9) <= TRAJECTORY_TABLE_LIMIT:
        out.trajectory_count = tr.info["trajectories"]
        out.trajectories = _trajectory_rows(case)
    # the identities behind reward-to-go and baselines (b = 1, and b = V without a horizon)
    from .identities import identity_tables

    V = None
    occ = res.engines.get("occupancy")
    if case.horizon is None and occ is not None and occ.info.get("weights"):
        alg0 = occ.algebra or res.algebra
        exact = {s: alg0.at_point(x)[0] for s, x in occ.info["weights"][0][1].items()}
        if all(v is not None for v in exact.values()):
            V = exact
    out.identities = identity_tables(case, values=V)
    # 4. the occupancy (no horizon): d(s) at the point
    occ = res.engines.get("occupancy")
    if occ is not None and case.horizon is None and occ.info.get("weights"):
        alg = occ.algebra or res.algebra
        d, _V = occ.info["weights"][0]
        for s in states:
            if s in d:
                exact, num = alg.at_point(d[s])
                out.occupancy[s] = exact if exact is not None else num
    return out


def _trajectory_rows(case: Case) -> list:
    """Every trajectory (the case is small and finite) with p(tau), R(tau), grad log p(tau), exact at the point."""
    pt = case.point
    params = case.parameters
    rows = []

    def val(e):
        return exact_normal(e.xreplace(pt)) if e.free_symbols else e

    def dlog(e, p):
        if p not in e.free_symbols:
            return sympy.Integer(0)
        return sympy.simplify((sympy.diff(e, p) / e).xreplace(pt))

    stack = [(s, 0, [s], val(e), sympy.Integer(0), {p: dlog(e, p) for p in params}, sympy.Integer(1))
             for s, e in case.rho0.items()]
    g = val(case.gamma)
    while stack:
        s, t, path, prob, R, score, gt = stack.pop()
        if s in case.terminal or (case.horizon is not None and t >= case.horizon):
            rows.append(TrajectoryRow(" ".join(path), exact_normal(prob), exact_normal(R),
                                      {p.name: exact_normal(x) for p, x in score.items()}))
            continue
        for a in case.actions[s]:
            if a not in case.pi[s]:
                continue
            pe = case.pi[s][a]
            for s2, Pe in case.P[s][a].items():
                r = case.r[s][a].get(s2, sympy.Integer(0))
                step = f"-{a}->" if a != DETERMINISTIC_ACTION else "->"
                new_score = {p: score[p] + dlog(pe, p) + dlog(Pe, p) for p in params}
                stack.append((s2, t + 1, path + [step, s2], prob * val(pe) * val(Pe), R + gt * val(r),
                              new_score, gt * g))
    rows.sort(key=lambda row: row.path)
    return rows
