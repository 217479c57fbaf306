r"""Where the terms cancel: the start, policy, dynamics and reward families of the gradient.

With grad log p(tau) = grad log rho0(s_0) + sum_t grad log pi(a_t|s_t) + sum_t grad log P(s_{t+1}|s_t,a_t),
the exact gradient splits into

- *start*: E[R(tau) grad log rho0(s_0)],
- *policy*: E[R(tau) sum_t grad log pi(a_t|s_t)] (the score-function / REINFORCE term),
- *dynamics*: E[R(tau) sum_t grad log P(s_{t+1}|s_t,a_t)],
- *reward*: E[sum_t gamma^t grad r(s_t,a_t,s_{t+1})] (the pathwise term),
- *discount*: E[sum_t t gamma^(t-1) grad gamma r_t], only when gamma depends on theta.

Each is the derivative of J when only that ingredient depends on theta and the
others are frozen at the point; they add up to the gradient.  The engines compute
them (:attr:`EngineResult.families`); this module classifies them:

``pointwise_zero``
    every per-step derivative of the ingredient (grad r, grad log P, grad log rho0,
    grad log pi, grad gamma) is identically zero as an expression: the usual reason
    a family is absent from textbook derivations;
``identically_zero`` (per parameter)
    the family's contribution to grad J is zero as a function of theta (proved in
    the rational function field) although its pointwise derivatives need not be;
``identity``
    when a family vanishes in expectation but not pointwise, the identity that makes
    it vanish, checked state by state (e.g. sum_a pi grad log pi = grad sum_a pi = 0
    for an entropy bonus).

References
----------
Williams (1992); Sutton et al. (2000); Silver et al. (2014), for the deterministic
policy gradient, where the policy family is absent and the dynamics and reward
families carry the gradient.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from .algebra import Algebra
from .engines.base import FAMILIES
from .printing import element_string, omit_long

__all__ = ["FamilyReport", "family_reports", "SCORE_FAMILIES", "REPORTED_FAMILIES"]

#: The families that the usual score-function formula keeps (with fixed rho0, P and r).
SCORE_FAMILIES = ("policy",)
#: Always reported (the JSON contract); "discount" is added when gamma depends on theta.
REPORTED_FAMILIES = ("start", "policy", "dynamics", "reward")


@dataclass
class FamilyReport:
    """One family: does it vanish pointwise, is its contribution identically zero, and why."""

    family: str
    pointwise_zero: bool
    #: one example of a non-zero per-step derivative, e.g. "d r(S, a, done)/d t1 = ..."
    witness: str | None
    #: param -> {"expression", "identically_zero", "zero_at_point", "float", "value"}
    contribution: dict = field(default_factory=dict)
    #: why the contribution vanishes although the pointwise derivatives do not
    identity: str | None = None

    def to_dict(self, limit: int | None = None) -> dict:
        """The JSON form; with ``limit``, expressions and values longer than that are left out (and
        the contribution says so: ``expression_omitted`` / ``value_omitted``)."""
        return {
            "pointwise_zero": self.pointwise_zero,
            "witness": self.witness,
            "identity": self.identity,
            "contribution": {p: omit_long(dict(c), limit) for p, c in self.contribution.items()},
        }


def _ingredients(case, family):
    """(place, expression) of the per-step ingredients whose derivatives make up a family."""
    if family == "start":
        return [(f"rho0({s})", e) for s, e in case.rho0.items()]
    if family == "discount":
        return [("gamma", case.gamma)]
    out = []
    for s in case.nonterminal:
        for a in case.actions[s]:
            if family == "policy" and a in case.pi[s]:
                out.append((f"pi({a}|{s})", case.pi[s][a]))
            for s2, e in case.P[s].get(a, {}).items():
                if family == "dynamics":
                    out.append((f"P({s2}|{s},{a})", e))
                elif family == "reward" and s2 in case.r[s][a]:
                    out.append((f"r({s},{a},{s2})", case.r[s][a][s2]))
    return out


def _nonzero_derivative(case, alg: Algebra, family):
    """A witness that some per-step derivative of the family is not identically zero, or None.

    The derivatives are the algebra's own (``alg.d``, the ones the engines used): in symbolic
    mode they are exact rational functions, so a derivative is zero exactly when the field says
    so.  At the point, a derivative that is not zero there is a witness; one that is zero at the
    point is a witness when ``sympy.diff`` does not give 0 (a structural test: no ``simplify``).
    Stops at the first witness.
    """
    log_family = family in ("start", "policy", "dynamics")
    params = set(case.parameters)
    for place, e in _ingredients(case, family):
        moving = e.free_symbols & params
        if not moving:
            continue
        ds = alg.d(e)
        for j, p in enumerate(alg.params):
            if p not in moving:
                continue
            what = f"d log {place}" if log_family else f"d {place}"
            if alg.mode == "symbolic":
                if alg.is_zero(ds[j]):
                    continue
                y = ds[j]
                if log_family and not alg.is_zero(alg.of(e)):
                    y = y / alg.of(e)
                return f"{what}/d{p.name} = {element_string(alg, y)[0]}"
            if not alg.is_zero(ds[j]):
                y = ds[j]
                if log_family and not alg.is_zero(alg.of(e)):
                    y = y / alg.of(e)
                exact, num = alg.at_point(y)
                shown = str(exact) if exact is not None else str(sympy.N(num, 15))
                return f"{what}/d{p.name} = {shown} at the point"
            d = sympy.diff(e, p)
            if d != 0:
                return f"{what}/d{p.name} = {d / e if log_family else d} (zero at the point, not identically)"
    return None


def _identity(case, alg: Algebra, family) -> str | None:
    """The local identity that makes a family's expected contribution vanish, checked exactly."""
    zero = alg.zero
    n = len(alg.params)
    if family == "reward":
        for s in case.nonterminal:
            for j in range(n):
                total = zero
                for a in case.actions[s]:
                    if a not in case.pi[s]:
                        continue
                    p_a = alg.of(case.pi[s][a])
                    for s2, Pe in case.P[s][a].items():
                        re = case.r[s][a].get(s2)
                        if re is not None:
                            total += p_a * alg.of(Pe) * alg.d(re)[j]
                if total != zero:
                    return None
        through_pi = case.r_written is not None and all(
            not (e.free_symbols & set(case.parameters))
            for s in case.r_written for a in case.r_written[s] for e in case.r_written[s][a].values())
        if through_pi:
            return ("the reward depends on theta only through pi(a|s), as an entropy bonus -alpha*log(pi) "
                    "does; in every state sum_a pi(a|s) grad log pi(a|s) = grad sum_a pi(a|s) = grad 1 = 0, "
                    "so sum_a pi(a|s) E[grad r | s, a] = 0 (checked exactly state by state)")
        return "sum_a pi(a|s) sum_s' P(s'|s,a) grad r(s,a,s') = 0 in every state (checked exactly)"
    if family == "dynamics":
        return ("in every state and action, sum_s' grad P(s'|s,a) [r + gamma V(s')] = 0: "
                "sum_s' grad P(s'|s,a) = grad 1 = 0 and the next states' targets are equal")
    if family == "start":
        return "sum_s grad rho0(s) V(s) = 0: sum_s grad rho0(s) = grad 1 = 0 and V is equal on the start's support"
    if family == "policy":
        return ("sum_s d(s) sum_a grad pi(a|s) Q(s,a) = 0: sum_a grad pi(a|s) = 0 and the action values are "
                "equal where the policy moves")
    return None


def family_reports(case, alg: Algebra, families: dict, quantity) -> dict[str, FamilyReport]:
    """Classify each family of an engine's result (``families``: family -> list over parameters).

    ``quantity(x)`` turns a domain element into a :class:`~pgverify.check.Quantity`.
    """
    names = [p.name for p in case.parameters]
    gamma_moves = bool(case.gamma.free_symbols & set(case.parameters))
    out = {}
    for f in FAMILIES:
        if f not in REPORTED_FAMILIES and not (f == "discount" and gamma_moves):
            continue
        witness = _nonzero_derivative(case, alg, f)
        report = FamilyReport(f, witness is None, witness)
        all_zero = True
        for j, p in enumerate(names):
            x = families[f][j]
            q = quantity(x)
            ident = alg.mode == "symbolic" and alg.is_zero(x)
            if witness is None:
                ident = True  # no derivative anywhere: trivially zero
            # zero at the point: the exact value, else its 50 digits (a float of 0.0 may be 2.5e-925)
            at_point = q.value == "0" or (q.value is None and _digits_zero(q.digits))
            all_zero = all_zero and ident
            report.contribution[p] = {"expression": q.expression, "identically_zero": ident,
                                      "zero_at_point": at_point, "value": q.value, "float": q.float,
                                      "digits": q.digits}
        if witness is not None and all_zero and names:
            report.identity = _identity(case, alg, f)
        out[f] = report
    return out


def deterministic_policy_gradient(case, alg: Algebra, occupancy_result) -> list | None:
    r"""The deterministic policy gradient, sum_t gamma^t sum_s Pr(s_t = s) grad mu(s) dQ_t/da at a = mu(s).

    (Silver et al. 2014, Theorem 1; time-indexed with a horizon, with the discounted
    occupancy d(s) without one.)  dQ/da = sum_s' [dP(s'|s,a)/da (r + gamma V(s')) + P dr/da],
    from the case's transitions and rewards as written in the action ``a``.  It equals the
    dynamics plus reward families when P and r depend on theta only through a.
    Returns one value per parameter, or None when the policy is not deterministic.
    """
    if case.mu is None or occupancy_result is None:
        return None
    from .model import DETERMINISTIC_ACTION

    zero = alg.zero
    n = len(alg.params)
    g = alg.of(case.gamma)
    ders = case.action_derivatives()
    out = [zero] * n
    for weight, V_next in occupancy_result.info["weights"]:
        for s, w in weight.items():
            if w == zero or s not in ders:
                continue
            dP, dr = ders[s]
            P = case.P[s][DETERMINISTIC_ACTION]
            r = case.r[s][DETERMINISTIC_ACTION]
            dQ = zero
            for s2, e in dP.items():
                target = (alg.of(r[s2]) if s2 in r else zero) + g * V_next.get(s2, zero)
                dQ += alg.of(e) * target
                if s2 in dr and s2 in P:
                    dQ += alg.of(P[s2]) * alg.of(dr[s2])
            dmu = alg.d(case.mu[s])
            for j in range(n):
                if dmu[j] != zero:
                    out[j] += w * dmu[j] * dQ
    return out


def _digits_zero(digits: str | None) -> bool:
    """A 50-digit decimal (``Quantity.digits``) that is zero; None (no digits) counts as zero."""
    if digits is None:
        return True
    import mpmath

    with mpmath.workdps(60):
        return mpmath.mpf(digits) == 0


def acts_only_through_the_action(case) -> bool:
    """True when, with a deterministic policy, theta reaches P and r only through a = mu(s)."""
    params = set(case.parameters)
    for table in (case.P_of_a or {}, case.r_of_a or {}):
        for row in table.values():
            if any(e.free_symbols & params for e in row.values()):
                return False
    return True
