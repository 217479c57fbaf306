r"""The policy-induced chain at the parameter point, as flat arrays.

:func:`compile_chain` reads a :class:`~pgverify.model.Case` once and returns a
:class:`PointChain`: the states that can be reached from the start (terminal ones left out:
their value is 0), the (state, action) pairs with a policy entry, the transitions
(pair, next state) with their probability and reward, the start vector and the discount, and
every ingredient's partial derivatives at the point in coordinate form
(entry, parameter, value).  No sympy object is made per entry: each distinct expression of the
case is evaluated once by :class:`~pgverify.pointvalues.PointEvaluator`.

Numbers are either exact (python-flint ``fmpq``, in Python lists) or float64 arrays with a
rigorous bound on each entry's distance from the exact value (``*_err`` arrays), from ball
arithmetic.  The matrix engines (:mod:`pgverify.engines.matrix`) work on this.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import flint
import numpy as np
import sympy

from .graph import reachable_states
from .pointvalues import Irrational, NotFinite, PointEvaluator, to_float

__all__ = ["PointChain", "compile_chain", "Irrational", "NotFinite"]


@dataclass
class Coo:
    """Partial derivatives in coordinate form: ``d entry[idx[k]] / d theta[par[k]] = val[k]``."""

    idx: np.ndarray
    par: np.ndarray
    val: object  # list of fmpq (exact) or float array
    err: np.ndarray | None = None  # float: bound on |val - exact|

    def __len__(self):
        return len(self.idx)


@dataclass
class PointChain:
    """A case at its point, as arrays (see the module docstring).

    Index spaces: states ``0..S-1`` (reachable, non-terminal), pairs ``0..m-1``, transitions
    ``0..T-1``.  ``tr_next[t]`` is -1 when the next state is terminal (value 0).
    """

    kind: str  # "exact" or "float"
    states: list
    n: int
    parameters: list  # names
    pair_state: np.ndarray
    pair_action: list
    tr_pair: np.ndarray
    tr_next: np.ndarray
    rho0: object  # (S,) start mass on chain states
    pi: object  # (m,)
    P: object  # (T,)
    r: object  # (T,)
    gamma: object
    d_rho0: Coo
    d_pi: Coo
    d_P: Coo
    d_r: Coo
    d_gamma: dict  # j -> value
    horizon: int | None
    errors: dict = field(default_factory=dict)  # float: name -> error array / float
    #: float: d_gamma's error bounds, j -> bound
    d_gamma_err: dict = field(default_factory=dict)

    @property
    def S(self) -> int:
        return len(self.states)

    @property
    def T(self) -> int:
        return len(self.tr_pair)

    @property
    def tr_state(self) -> np.ndarray:
        return self.pair_state[self.tr_pair]


def compile_chain(case, kind: str = "exact") -> PointChain:
    """The case at its point as a :class:`PointChain`.

    ``kind`` "exact" raises :class:`Irrational` when some value or derivative at the point is
    irrational; "float" evaluates in ball arithmetic and rounds to float64 with bounds.
    Raises :class:`NotFinite` when a value is not finite (or beyond float64 in "float").
    """
    ev = PointEvaluator(case.parameters, case.point, "exact" if kind == "exact" else "ball")
    reachable = reachable_states(case)  # the structural support, as the engines use it
    states = [s for s in case.states if s in reachable and s not in case.terminal]
    sidx = {s: i for i, s in enumerate(states)}
    pair_state, pair_action, tr_pair, tr_next = [], [], [], []
    vals = {"rho0": [], "pi": [], "P": [], "r": []}
    ders = {k: ([], [], []) for k in vals}
    memo: dict = {}  # id(expression) -> (expression, value, gradient items): one evaluation per object

    def evaluate(expr):
        hit = memo.get(id(expr))
        if hit is None or hit[0] is not expr:
            v, g = ev.eval(expr)
            hit = memo[id(expr)] = (expr, v, tuple(g.items()))
        return hit[1], hit[2]

    def add(name, expr, position):
        v, g = evaluate(expr)
        vals[name].append(v)
        if g:
            add_derivatives(ders[name], position, g)

    softmax = _TabularSoftmax(case, ev) if case.policy_form == "tabular" else None
    zero_reward = sympy.Integer(0)
    pi_vals, P_vals, r_vals = vals["pi"], vals["P"], vals["r"]
    pi_d = ders["pi"]
    rho = [None] * len(states)
    rho_idx = []
    for s, e in case.rho0.items():
        if s in sidx:
            rho_idx.append((sidx[s], e))
    for s in states:
        i = sidx[s]
        pi, P, R = case.pi[s], case.P[s], case.r[s]
        fast = softmax.state(s) if softmax is not None else None
        for a in case.actions[s]:
            pe = pi.get(a)
            if pe is None:
                continue
            k = len(pair_state)
            pair_state.append(i)
            pair_action.append(a)
            if fast is not None:
                v, grad = fast[a]
                pi_vals.append(v)
                if grad:
                    add_derivatives(pi_d, k, grad)
            else:
                add("pi", pe, k)
            ra = R.get(a, {})
            for s2, Pe in P.get(a, {}).items():
                t = len(tr_pair)
                tr_pair.append(k)
                tr_next.append(sidx.get(s2, -1))
                re = ra.get(s2)
                v, g = evaluate(Pe)
                P_vals.append(v)
                if g:
                    add_derivatives(ders["P"], t, g)
                v, g = evaluate(re if re is not None else zero_reward)
                r_vals.append(v)
                if g:
                    add_derivatives(ders["r"], t, g)
    # start: a dense vector over the chain's states
    for i, e in rho_idx:
        v, g = ev.eval(e)
        rho[i] = v
        for j, x in g.items():
            ders["rho0"][0].append(i)
            ders["rho0"][1].append(j)
            ders["rho0"][2].append(x)
    # start states outside the chain (terminal) still move the start family only through V = 0
    gv, gg = ev.eval(case.gamma)
    zero = ev._num(flint.fmpq(0))
    rho = [zero if x is None else x for x in rho]

    def coo(name):
        di, dp, dv = ders[name]
        return Coo(np.asarray(di, dtype=np.int64), np.asarray(dp, dtype=np.int64), dv)

    chain = PointChain(
        kind="exact", states=states, n=len(case.parameters), parameters=case.parameter_names,
        pair_state=np.asarray(pair_state, dtype=np.int64), pair_action=pair_action,
        tr_pair=np.asarray(tr_pair, dtype=np.int64), tr_next=np.asarray(tr_next, dtype=np.int64),
        rho0=rho, pi=vals["pi"], P=vals["P"], r=vals["r"], gamma=gv,
        d_rho0=coo("rho0"), d_pi=coo("pi"), d_P=coo("P"), d_r=coo("r"), d_gamma=dict(gg),
        horizon=case.horizon,
    )
    if kind == "exact":
        return chain
    return _to_float(chain)


def add_derivatives(coo_lists, position, grad):
    """Append entry ``position``'s partial derivatives ((parameter, value) pairs) in coordinate form."""
    di, dp, dv = coo_lists
    for j, x in grad:
        di.append(position)
        dp.append(j)
        dv.append(x)


class _TabularSoftmax:
    """pi(.|s) and its gradient for a tabular softmax policy, evaluated once per distinct point.

    pi(a|s) = exp(theta_sa) / sum_b exp(theta_sb) (Sutton & Barto 2018, eq. 13.2) depends only on the
    values of the state's own parameters, so every state whose parameters have the same values (all
    of them at theta = 0) shares one evaluation (by :class:`~pgverify.pointvalues.PointEvaluator`, in
    the chain's number system), kept in local form (action position, parameter position) and moved
    to the state's parameters.  A state whose policy is not that softmax of its own parameters
    theta_<state>_<action> (one action, a missing logit) is evaluated entry by entry.
    """

    def __init__(self, case, ev):
        self.case, self.ev = case, ev
        self.index = {p.name: j for j, p in enumerate(case.parameters)}
        self.cache: dict = {}

    def state(self, s):
        """action -> (value, ((parameter, derivative), ...)), or None (then entry by entry)."""
        case = self.case
        pi = case.pi[s]
        acts = [a for a in case.actions[s] if a in pi]
        js = [self.index.get(f"theta_{s}_{a}") for a in acts]
        if len(acts) < 2 or None in js:
            return None
        key = (len(acts), tuple(case.point[case.parameters[j]] for j in js))
        hit = self.cache.get(key)
        if hit is None:
            pos = {j: b for b, j in enumerate(js)}
            hit = []
            for a in acts:
                v, g = self.ev.eval(pi[a])
                if any(j not in pos for j in g):
                    return None
                hit.append((v, tuple((pos[j], x) for j, x in g.items())))
            self.cache[key] = hit
        return {a: (v, tuple((js[b], x) for b, x in grad)) for a, (v, grad) in zip(acts, hit)}


def _floats(values):
    """Midpoints and error bounds; an exact value shared by many entries is converted once.

    The entries are grouped by identity (the evaluator returns one object per distinct expression,
    and ``values`` keeps every object alive, so identities are not reused) with numpy, one
    conversion per group."""
    if not len(values):
        return np.empty(0), np.empty(0)
    ids = np.fromiter(map(id, values), dtype=np.uint64, count=len(values))
    uniq, first, inv = np.unique(ids, return_index=True, return_inverse=True)
    pairs = [to_float(values[k]) for k in first.tolist()]
    mids = np.fromiter((m for m, _ in pairs), float, len(pairs))
    errs = np.fromiter((e for _, e in pairs), float, len(pairs))
    return mids[inv], errs[inv]


def _to_float(ch: PointChain) -> PointChain:
    """Round every ball to float64, keeping a bound on each entry's error."""
    errors = {}
    out = {}
    for name in ("rho0", "pi", "P", "r"):
        out[name], errors[name] = _floats(getattr(ch, name))
    g, errors["gamma"] = to_float(ch.gamma)
    coos = {}
    for name in ("d_rho0", "d_pi", "d_P", "d_r"):
        c = getattr(ch, name)
        v, e = _floats(c.val)
        coos[name] = Coo(c.idx, c.par, v, e)
    dg, dge = {}, {}
    for j, x in ch.d_gamma.items():
        dg[j], dge[j] = to_float(x)
    return PointChain(
        kind="float", states=ch.states, n=ch.n, parameters=ch.parameters, pair_state=ch.pair_state,
        pair_action=ch.pair_action, tr_pair=ch.tr_pair, tr_next=ch.tr_next, rho0=out["rho0"], pi=out["pi"],
        P=out["P"], r=out["r"], gamma=g, d_rho0=coos["d_rho0"], d_pi=coos["d_pi"], d_P=coos["d_P"],
        d_r=coos["d_r"], d_gamma=dg, horizon=ch.horizon, errors=errors, d_gamma_err=dge,
    )
