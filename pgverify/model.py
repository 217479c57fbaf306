"""The validated finite MDP with a parameterised policy.

A :class:`Case` is what every engine reads.  It is built from a case file or a
dict by :mod:`pgverify.casefile` (which validates it) and holds sympy expressions
in the parameters ``theta``:

- ``rho0[s]``: the start distribution;
- ``pi[s][a]``: the policy pi_theta(a|s) (for a deterministic policy, one
  pseudo-action :data:`DETERMINISTIC_ACTION` with probability 1);
- ``P[s][a][s_next]``: the dynamics;
- ``r[s][a][s_next]``: the reward of the step (with ``pi`` and, for a
  deterministic policy, ``a`` already substituted);
- ``gamma`` and ``horizon``.

Only non-zero entries are stored.  Terminal states have no actions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import sympy


__all__ = ["Case", "DETERMINISTIC_ACTION", "POLICY_FORMS"]

#: The name of the single pseudo-action of a state under a deterministic policy.
DETERMINISTIC_ACTION = "mu"

POLICY_FORMS = ("explicit", "softmax", "tabular", "deterministic")


@dataclass(frozen=True, eq=False)
class Case:
    """A validated finite MDP with a parameterised policy (see the module docstring)."""

    name: str
    states: tuple
    terminal: frozenset
    actions: Mapping[str, tuple]
    rho0: Mapping[str, sympy.Expr]
    pi: Mapping[str, Mapping[str, sympy.Expr]]
    P: Mapping[str, Mapping[str, Mapping[str, sympy.Expr]]]
    r: Mapping[str, Mapping[str, Mapping[str, sympy.Expr]]]
    gamma: sympy.Expr
    horizon: int | None
    parameters: tuple  # sympy Symbols, in order
    point: Mapping[sympy.Symbol, sympy.Expr]
    policy_form: str = "explicit"
    description: str = ""
    constants: Mapping[str, sympy.Expr] = field(default_factory=dict)
    #: deterministic policy: mu[s], the action symbol, and P, r as written (in ``a``)
    mu: Mapping[str, sympy.Expr] | None = None
    action_symbol: sympy.Symbol | None = None
    P_of_a: Mapping | None = None
    r_of_a: Mapping | None = None
    #: rewards as written, with the symbol ``pi`` not yet replaced by pi(a|s)
    r_written: Mapping | None = None
    pi_symbol: sympy.Symbol | None = None
    warnings: tuple = ()
    source: str | None = None
    #: key path -> line in the case file (for errors found later, e.g. at a new point)
    lines: Mapping = field(default_factory=dict)
    #: (s, a, s_next) -> (key path, line) of the reward entry that gives that step its reward
    reward_keys: Mapping = field(default_factory=dict)
    #: the SequenceCase this MDP was compiled from (pgverify.sequence), or None
    sequence: object | None = None

    # -- construction -------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping, *, source: str | None = None) -> "Case":
        """Build and validate a case from a dict with the fields of a case file.

        Values may be numbers, strings in the expression language, or sympy
        expressions in the declared parameter symbols.

        Examples
        --------
        >>> case = Case.from_dict({
        ...     "name": "coin", "parameters": {"p": "1/3"},
        ...     "states": ["S", "G"], "terminal": ["G"], "actions": ["stop", "go"],
        ...     "start": "S", "policy": {"S": {"stop": "1 - p", "go": "p"}},
        ...     "transitions": {"S": {"stop": "G", "go": "G"}},
        ...     "rewards": {"S": {"go": 1}}})
        >>> case.pi["S"]["go"]
        p
        """
        from .casefile import case_from_dict

        return case_from_dict(data, source=source)

    @classmethod
    def from_arrays(cls, P, R, **options) -> "Case":
        """Build and validate a case from transition and reward arrays (pymdptoolbox or mushroom-rl layout).

        Delegates to :func:`pgverify.importers.arrays.from_arrays`, which documents the options.
        """
        from .importers.arrays import from_arrays

        return from_arrays(P, R, **options)

    # -- convenience --------------------------------------------------------
    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def nonterminal(self) -> tuple:
        return tuple(s for s in self.states if s not in self.terminal)

    def symbol(self, name: str) -> sympy.Symbol:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def at(self, values: Mapping) -> "Case":
        """The same case with some parameter values changed, validated again at the new point.

        ``values`` maps parameter names (or symbols) to numbers, exact strings
        (``"1/3"``, ``"2 - sqrt(2)"``) or sympy numbers.
        """
        from .casefile import revalidate_at

        return revalidate_at(self, values)

    def with_(self, **changes) -> "Case":
        """A copy with fields replaced (no validation; for internal use)."""
        return replace(self, **changes)

    def steps(self):
        """Iterate over every step ``(s, a, s_next, pi, P, r)`` with non-zero pi and P expressions."""
        for s in self.nonterminal:
            for a in self.actions[s]:
                p_a = self.pi[s].get(a, sympy.Integer(0))
                for s2, prob in self.P[s][a].items():
                    yield s, a, s2, p_a, prob, self.r[s][a].get(s2, sympy.Integer(0))

    def expressions(self):
        """Every expression of the case (for generator discovery and parameter use).

        With a deterministic policy this includes mu(s) and the action derivatives
        dP/da and dr/da at a = mu(s), which the deterministic policy gradient uses.
        """
        yield from self.rho0.values()
        yield self.gamma
        for s in self.nonterminal:
            yield from self.pi[s].values()
            for a in self.actions[s]:
                yield from self.P[s][a].values()
                yield from self.r[s][a].values()
        if self.mu is not None:
            for s, (dP, dr) in self.action_derivatives().items():
                yield self.mu[s]
                yield from dP.values()
                yield from dr.values()

    def action_derivatives(self) -> dict:
        """Deterministic policy: s -> ({s_next: dP/da}, {s_next: dr/da}) at a = mu(s)."""
        if self.mu is None:
            return {}
        a = self.action_symbol
        out = {}
        for s in self.nonterminal:
            if s not in self.mu or s not in (self.P_of_a or {}):
                continue
            dP = {s2: sympy.diff(e, a).subs(a, self.mu[s]) for s2, e in self.P_of_a[s].items()}
            dr = {s2: sympy.diff(e, a).subs(a, self.mu[s]) for s2, e in (self.r_of_a or {}).get(s, {}).items()}
            out[s] = (dP, dr)
        return out

    def __repr__(self) -> str:
        return (
            f"Case({self.name!r}, states={len(self.states)}, parameters={self.parameter_names}, "
            f"policy={self.policy_form}, gamma={self.gamma}, horizon={self.horizon})"
        )

