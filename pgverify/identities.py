r"""The identities behind the usual estimators, checked exactly on a case.

*Causality* (the reason for reward-to-go): for t' < t,

.. math:: \mathbb{E}\big[\nabla\log\pi(a_t\mid s_t)\,\gamma^{t'} r_{t'}\big] = 0,

because r_{t'} is fixed before a_t is drawn and sum_a pi grad log pi = 0.
*Baselines*: for any function b of the state,

.. math:: \mathbb{E}\big[\nabla\log\pi(a_t\mid s_t)\, b(s_t)\big] = 0.

(Williams 1992; Sutton & Barto 2018, section 13.4; Greensmith, Bartlett & Baxter 2004.)

Both are computed here *without* assuming them: trajectory prefixes of the first T
steps are enumerated at the point, in exact arithmetic where the point allows, and each
term E[p(prefix) d log pi(a_t|s_t) ...] is summed as it comes, using
p grad log pi = (p / pi) grad pi (division-free).  The tables show every term; the
identities hold when the t' < t entries and the baseline entries are exactly zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .algebra import Algebra
from .graph import count_trajectories

__all__ = ["IdentityTables", "identity_tables", "PREFIX_LIMIT"]

PREFIX_LIMIT = 20_000  # most prefixes enumerated; T is lowered until the count fits


@dataclass
class IdentityTables:
    steps: int  # T: the tables cover t, t' < T
    parameters: list
    #: (t, t') -> [per parameter] exact values of E[d log pi(a_t|s_t) gamma^t' r_t'] at the point
    causality: dict = field(default_factory=dict)
    #: (t, baseline name) -> [per parameter] E[d log pi(a_t|s_t) b(s_t)], b = 1 and b = V
    baselines: dict = field(default_factory=dict)
    exact: bool = True  # False when the point forced 60-digit arithmetic

    def _zero(self, x) -> bool:
        return x == 0 if self.exact else abs(x) <= 1e-50  # 60-digit arithmetic: the stated tolerance

    def causal_terms_zero(self) -> bool:
        return all(all(self._zero(x) for x in v) for (t, t2), v in self.causality.items() if t2 < t)

    def baselines_zero(self) -> bool:
        return all(all(self._zero(x) for x in v) for v in self.baselines.values())


def identity_tables(case, steps: int = 3, values=None) -> IdentityTables:
    """The causality and baseline tables for the first ``steps`` steps (see the module docstring).

    ``values`` maps states to V(s) for the baseline b = V (a dict of exact numbers at the
    point); without it only the constant baseline b = 1 is tabulated.
    """
    alg = Algebra(case, "at-point")
    T = steps if case.horizon is None else min(steps, case.horizon)
    while T > 1 and (count_trajectories(case, T) or 0) > PREFIX_LIMIT:
        T -= 1
    zero = alg.zero
    n = len(alg.params)
    g = alg.of(case.gamma)
    tables = IdentityTables(T, list(case.parameter_names), exact=alg.mode == "exact-at-point")
    for t in range(T):
        for t2 in range(T):
            tables.causality[(t, t2)] = [zero] * n
        tables.baselines[(t, "b = 1")] = [zero] * n
        if values is not None:
            tables.baselines[(t, "b = V")] = [zero] * n
    vals = {s: alg.domain.from_sympy(v) for s, v in (values or {}).items()}
    # stack: (state, t, prob, terms_k: list over earlier k of p * dlog pi(a_k) vectors, rewards: [(t', g^t' r)])
    stack = [(s, 0, alg.of(e), [], [], alg.one) for s, e in case.rho0.items()]
    while stack:
        s, t, prob, terms, rewards, gt = stack.pop()
        if t >= T or s in case.terminal:
            continue
        for a in case.actions[s]:
            pe = case.pi[s].get(a)
            if pe is None:
                continue
            p_a, dp_a = alg.of(pe), alg.d(pe)
            score_now = [prob * x for x in dp_a]  # p(prefix) * pi * dlog pi, division-free
            for j in range(n):  # baselines: E[dlog pi(a_t|s_t) b(s_t)]
                if score_now[j] != zero:
                    tables.baselines[(t, "b = 1")][j] += score_now[j]
                    if values is not None:
                        tables.baselines[(t, "b = V")][j] += score_now[j] * vals.get(s, zero)
            for t2, disc_r in rewards:  # causality, t' < t: rewards already received
                row = tables.causality[(t, t2)]
                for j in range(n):
                    if score_now[j] != zero:
                        row[j] += score_now[j] * disc_r
            for s2, Pe in case.P[s][a].items():
                P = alg.of(Pe)
                w = p_a * P
                re = case.r[s][a].get(s2)
                disc_r = gt * (alg.of(re) if re is not None else zero)
                new_terms = [[x * w for x in vec] for vec in terms] + [[x * P for x in score_now]]
                for k, vec in enumerate(new_terms):  # t' >= k: the reward of this step, after a_k
                    row = tables.causality[(k, t)]
                    for j in range(n):
                        if vec[j] != zero and disc_r != zero:
                            row[j] += vec[j] * disc_r
                stack.append((s2, t + 1, prob * w, new_terms, rewards + [(t, disc_r)], gt * g))
    for table in (tables.causality, tables.baselines):
        for key, vec in table.items():
            table[key] = [alg.at_point(x)[0] if alg.mode == "exact-at-point" else alg.at_point(x)[1] for x in vec]
    return tables
