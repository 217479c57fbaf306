"""The case at its point as sparse float64 tables, for sampling and the estimators at scale.

:func:`sparse_tabulate` reads :func:`pgverify.chain.compile_chain` (``"float"``: every value
and derivative evaluated once, in ball arithmetic, rounded to float64) and keeps only what a
sampled episode can touch: per state the (action, next state) entries with a non-zero joint
probability pi(a|s) P(s'|s, a), and per entry the parameters with a non-zero derivative
(compressed rows: ``*_ptr``, ``*_par``, ``*_val``).  Nothing of size states x actions x
states (x parameters) is built: Taxi (500 states, 2976 parameters) has 2400 transitions and
14,400 non-zero policy scores, where the dense tables of
:class:`~pgverify.montecarlo.tabular.TabularMDP` would have 4.5e9 entries.

States keep the case's indexing (``states`` is ``case.states``, terminal and unreachable ones
included, with empty rows), and each state's entries are in the dense table's order (action,
then next state), so :func:`sample_sparse` draws exactly what
:func:`pgverify.montecarlo.sampler.sample` draws from the dense table for the same seed (the
same cumulative sums, up to the rounding of a row's total), and the estimators of
:mod:`pgverify.montecarlo.estimators` give the same numbers on the same episodes.

Scores are the dense table's: grad log pi = grad pi / pi where pi > 0 (0 where pi = 0, and the
state is then a *boundary* state when grad pi is not 0), the same for P and rho0; grad r and
grad gamma as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sampler import Episodes, lockstep, step_limit

__all__ = ["SparseMDP", "sparse_tabulate", "sample_sparse", "sparse_state_values"]


@dataclass
class _Csr:
    """Per row k (a pair, transition or state): the parameters ``par[ptr[k]:ptr[k+1]]`` with values ``val``
    (and ``err``, a bound on each value's distance from the exact one)."""

    ptr: np.ndarray
    par: np.ndarray
    val: np.ndarray
    err: np.ndarray | None = None

    @classmethod
    def build(cls, rows, par, val, count, err=None):
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        ptr = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=count), out=ptr[1:])
        err = np.zeros(len(rows)) if err is None else np.asarray(err, dtype=float)[order]
        return cls(ptr, np.asarray(par, dtype=np.int64)[order], np.asarray(val, dtype=float)[order], err)

    def expand(self, rows: np.ndarray):
        """For entries ``rows`` (one per item): (item of each non-zero, its parameter, its value)."""
        cnt = self.ptr[rows + 1] - self.ptr[rows]
        item = np.repeat(np.arange(len(rows), dtype=np.int64), cnt)
        first = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(cnt, out=first[1:])
        pos = self.ptr[rows][item] + (np.arange(first[-1], dtype=np.int64) - first[:-1][item])
        return item, self.par[pos], self.val[pos]

    def max_abs(self, n):
        out = np.zeros(n)
        if len(self.par):
            np.maximum.at(out, self.par, np.abs(self.val))
        return out

    def any(self) -> bool:
        return bool(np.count_nonzero(self.val))


@dataclass
class SparseMDP:
    """See the module docstring.  S states (the case's), T transitions, n parameters."""

    states: list
    actions: list  # per state: its action names (the dense table's action index is the position)
    terminal: np.ndarray  # (S,) bool
    rho0: np.ndarray  # (S,)
    gamma: float
    horizon: int | None
    parameters: list
    # transitions, sorted by key = (s * A + a) * S + s' (the dense table's order)
    tr_state: np.ndarray
    tr_action: np.ndarray
    tr_next: np.ndarray
    tr_pair: np.ndarray  # the (s, a) pair of each transition (rows of ``x``)
    tr_w: np.ndarray  # pi(a|s) P(s'|s, a)
    tr_r: np.ndarray
    tr_key: np.ndarray
    width: int  # A: most actions of a state
    x: _Csr  # per pair: grad log pi
    p: _Csr  # per transition: grad log P
    q: _Csr  # per transition: grad r
    drho: _Csr  # per state: grad log rho0
    dgamma: np.ndarray  # (n,)
    boundary: bool = False
    boundary_states: frozenset = frozenset()
    #: bounds on the distance of each float from the exact value at the point (ball arithmetic, then
    #: the roundings here): of tr_w, tr_r, rho0, gamma and dgamma (x, p, q, drho carry their own ``err``)
    tr_w_err: np.ndarray | None = None
    tr_r_err: np.ndarray | None = None
    rho0_err: np.ndarray | None = None
    gamma_err: float = 0.0
    dgamma_err: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.parameters)

    def extras_needed(self) -> bool:
        return self.p.any() or self.q.any() or self.drho.any() or bool(np.count_nonzero(self.dgamma))

    def lookup(self, s, a, s2) -> np.ndarray:
        """The transition index of each step (s, a, s'); ValueError for a step not in the table."""
        S = len(self.states)
        key = (np.asarray(s, dtype=np.int64) * self.width + a) * S + s2
        pos = np.searchsorted(self.tr_key, key)
        pos = np.minimum(pos, max(len(self.tr_key) - 1, 0))
        if len(key) and (not len(self.tr_key) or np.any(self.tr_key[pos] != key)):
            raise ValueError("an episode takes a step that has probability 0 at the point")
        return pos

    def max_abs_reward(self) -> float:
        return float(np.abs(self.tr_r).max(initial=0.0))


def sparse_tabulate(case, chain=None) -> SparseMDP:
    """The sparse tables of ``case`` at its point (from ``compile_chain(case, "float")`` unless given)."""
    from ..chain import _to_float, compile_chain
    from ..pointvalues import PointEvaluator, to_float

    if chain is None:
        chain = compile_chain(case, "float")
    elif chain.kind != "float":
        chain = _to_float(chain)  # floats with their error bounds
    states = list(case.states)
    S = len(states)
    cidx = {s: i for i, s in enumerate(states)}
    acts = [list(case.actions.get(s, ())) for s in states]
    A = max((len(a) for a in acts), default=1) or 1
    n = len(case.parameters)
    terminal = np.array([s in case.terminal for s in states], dtype=bool)
    # chain index -> case index; pairs -> action positions
    ch_to_case = np.array([cidx[s] for s in chain.states], dtype=np.int64)
    pair_case_state = ch_to_case[chain.pair_state] if len(chain.pair_state) else np.zeros(0, dtype=np.int64)
    apos = [{a: k for k, a in enumerate(acts[i])} for i in range(S)]
    pair_action = np.array([apos[s][a] for s, a in zip(pair_case_state.tolist(), chain.pair_action)], dtype=np.int64)
    pi = np.asarray(chain.pi, dtype=float)
    P = np.asarray(chain.P, dtype=float)
    r = np.asarray(chain.r, dtype=float)
    # next states: the chain marks terminal ones -1; recover them from the case (by each pair's entries)
    tr_next = np.empty(chain.T, dtype=np.int64)
    t = 0
    for k in range(len(chain.pair_state)):
        s = states[pair_case_state[k]]
        for s2 in case.P[s].get(chain.pair_action[k], {}):
            tr_next[t] = cidx[s2]
            t += 1
    assert t == chain.T
    tr_pair = chain.tr_pair
    tr_state = pair_case_state[tr_pair]
    tr_action = pair_action[tr_pair]
    key = (tr_state * A + tr_action) * S + tr_next
    order = np.argsort(key, kind="stable")
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))

    def dlog(coo, values, errors, count, remap=None):
        """grad log of an ingredient from grad itself: val / value where value != 0 (boundary else)."""
        idx = np.asarray(coo.idx, dtype=np.int64)
        val = np.asarray(coo.val, dtype=float)
        v = values[idx] if len(idx) else np.zeros(0)
        ok = v != 0
        bad = idx[~ok & (val != 0)]
        rows = idx if remap is None else remap[idx]
        q, qe = _quotient(val[ok], _err(coo)[ok], v[ok], errors[idx][ok] if len(idx) else np.zeros(0))
        return _Csr.build(rows[ok], coo.par[ok], q, count, qe), bad

    errs = chain.errors
    pi_err, P_err, r_err = (np.asarray(errs[k], dtype=float) for k in ("pi", "P", "r"))
    x, bad_pi = dlog(chain.d_pi, pi, pi_err, len(pi))
    p, bad_P = dlog(chain.d_P, P, P_err, chain.T, inv)
    q = _Csr.build(inv[np.asarray(chain.d_r.idx, dtype=np.int64)], chain.d_r.par, chain.d_r.val, chain.T,
                   _err(chain.d_r))
    # the start over every state of the case (terminal starts too: the sampler draws them)
    ev = PointEvaluator(case.parameters, case.point, "ball")
    rho0 = np.zeros(S)
    rho0_err = np.zeros(S)
    rho_rows, rho_par, rho_val, rho_err, bad_rho = [], [], [], [], False
    for s, e in case.rho0.items():
        v, g = ev.eval(e)
        i = cidx[s]
        rho0[i], rho0_err[i] = to_float(v)
        for j, d in g.items():
            dv, de = to_float(d)
            if rho0[i] != 0:
                rho_rows.append(i)
                rho_par.append(j)
                rho_val.append(dv)
                rho_err.append(de)
            elif dv != 0:
                bad_rho = True
    rho_rows = np.asarray(rho_rows, dtype=np.int64)
    rho_q, rho_qe = _quotient(np.asarray(rho_val, dtype=float), np.asarray(rho_err, dtype=float),
                              rho0[rho_rows], rho0_err[rho_rows])
    drho = _Csr.build(rho_rows, rho_par, rho_q, S, rho_qe)
    dgamma = np.zeros(n)
    dgamma_err = np.zeros(n)
    for j, v in chain.d_gamma.items():
        dgamma[j] = float(v)
        dgamma_err[j] = float(chain.d_gamma_err.get(j, 0.0))
    gamma_err = float(errs.get("gamma", 0.0))
    g_exact, _ = ev.eval(case.gamma)
    if _is_float(g_exact, float(chain.gamma)):
        gamma_err = 0.0  # a discount such as 1 or 1/2: the float is the exact value
    w = pi[tr_pair] * P
    w_err = _product_err(pi[tr_pair], pi_err[tr_pair], P, P_err, w)
    boundary_states = frozenset(int(s) for s in pair_case_state[bad_pi]) | frozenset(
        int(s) for s in tr_state[bad_P])
    mdp = SparseMDP(
        states=states, actions=acts, terminal=terminal, rho0=rho0, gamma=float(chain.gamma), horizon=case.horizon,
        parameters=list(case.parameter_names), tr_state=tr_state[order], tr_action=tr_action[order],
        tr_next=tr_next[order], tr_pair=tr_pair[order], tr_w=w[order], tr_r=r[order], tr_key=key[order], width=A,
        x=x, p=p, q=q, drho=drho, dgamma=dgamma, boundary_states=boundary_states, tr_w_err=w_err[order],
        tr_r_err=r_err[order], rho0_err=rho0_err, gamma_err=gamma_err, dgamma_err=dgamma_err)
    mdp.boundary = bad_rho or bool(boundary_states & set(_reachable(mdp)))
    return mdp


_U = 2.0**-53 * (1 + 1e-9)  # |fl(z) - z| <= _U |fl(z)| for a rounding to nearest
_ETA = 2.0**-1074  # what an underflowing rounding may add


def _is_float(x, f: float) -> bool:
    """Whether the exact value ``x`` (an fmpq, or an arb ball) is the float ``f`` itself."""
    import flint

    if isinstance(x, flint.fmpq):
        return x == flint.fmpq(*float(f).as_integer_ratio())
    return bool(x.rad() == 0 and x == flint.arb(f))


def _err(coo) -> np.ndarray:
    return np.zeros(len(coo.idx)) if coo.err is None else np.asarray(coo.err, dtype=float)


def _product_err(a, ea, b, eb, ab):
    """A bound on |fl(a b) - A B| given |a - A| <= ea, |b - B| <= eb (Higham 2002, ch. 3)."""
    return np.abs(a) * eb + np.abs(b) * ea + ea * eb + _U * np.abs(ab) + _ETA


def _quotient(a, ea, b, eb):
    """fl(a / b) and a bound on its distance from A / B, given |a - A| <= ea, |b - B| <= eb < |b|:
    |A/B - a/b| = |(A - a) b - a (B - b)| / |b B| <= (ea + |a/b| eb) / (|b| - eb), plus the rounding."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = a / b
        gap = np.abs(b) - eb
        e = np.where(gap > 0, (ea + np.abs(q) * eb) / np.where(gap > 0, gap, 1.0), np.inf)
    return q, (e + _U * np.abs(q) + _ETA) * (1 + 1e-12)


def _reachable(mdp: SparseMDP) -> list:
    """States reachable from the start through steps of positive probability."""
    import scipy.sparse as sp

    S = len(mdp.states)
    live = mdp.tr_w > 0
    G = sp.csr_matrix((np.ones(int(live.sum())), (mdp.tr_state[live], mdp.tr_next[live])), shape=(S, S))
    seen = mdp.rho0 != 0
    frontier = seen.copy()
    while frontier.any():
        frontier = ((G.T @ frontier.astype(float)) > 0) & ~seen
        seen |= frontier
    return np.nonzero(seen)[0].tolist()


class _SparseTable:
    """Categorical draws from many rows of different lengths at once (the sparse twin of
    :class:`pgverify.montecarlo.sampler._Table`): row r's CDF is shifted to [r, r + 1] and the
    rows are concatenated, so one ``searchsorted`` draws for any mix of rows."""

    def __init__(self, row_of: np.ndarray, probs: np.ndarray, rows: int):
        counts = np.bincount(row_of, minlength=rows)
        self.start = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(counts, out=self.start[1:])
        totals = np.zeros(rows)
        np.add.at(totals, row_of, probs)
        # per row: cumsum(probs / total) in order, the last entry set to 1 (no draw falls past it)
        scaled = probs / np.where(totals > 0, totals, 1)[row_of]
        cdf = _row_cumsum(scaled, self.start, counts)
        last = self.start[1:][counts > 0] - 1
        cdf[last] = 1.0
        self.flat = cdf + row_of
        self.last = np.maximum(self.start[1:] - 1, 0)

    def draw(self, rng, rows: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.flat, rows + rng.random(len(rows)), side="right")
        return np.minimum(pos, self.last[rows])


def _row_cumsum(x, start, counts):
    """Per row, the sequential cumulative sum (as np.cumsum on each row alone: the same roundings),
    vectorised over rows by position within the row."""
    out = np.empty_like(x)
    L = int(counts.max(initial=0))
    rows = np.nonzero(counts)[0]
    acc = np.zeros(len(rows))
    for k in range(L):
        has = counts[rows] > k
        rr = rows[has]
        pos = start[rr] + k
        acc[has] = acc[has] + x[pos]
        out[pos] = acc[has]
    return out


def sample_sparse(mdp: SparseMDP, episodes: int, seed: int | None = 0, max_steps: int | None = None) -> Episodes:
    """Sample ``episodes`` episodes at the parameter point: the same contract (and, for the same
    seed, the same draws) as :func:`pgverify.montecarlo.sampler.sample`, from the sparse table."""
    rng = np.random.Generator(np.random.PCG64(seed))
    limit = step_limit(mdp.horizon, mdp.gamma, max_steps)
    S = len(mdp.states)
    cdf = np.cumsum(mdp.rho0)
    u = rng.random(episodes) * cdf[-1]
    s = np.minimum(np.searchsorted(cdf, u, side="right"), S - 1)
    live = np.nonzero(mdp.tr_w > 0)[0]  # the entries a draw can take (sorted: rows in order)
    table = _SparseTable(mdp.tr_state[live], mdp.tr_w[live], S)
    itype = np.int16 if max(S, mdp.width) < 2**15 else np.int32
    lengths, flat, cut, tail = lockstep(rng, table, mdp.tr_next[live], mdp.terminal, s, limit, mdp.horizon,
                                        mdp.gamma, mdp.max_abs_reward())
    tr = live[flat]
    return Episodes(s.astype(itype), lengths, mdp.tr_state[tr].astype(itype), mdp.tr_action[tr].astype(itype),
                    mdp.tr_next[tr].astype(itype), mdp.tr_r[tr], cut, seed, limit, tail)


def sparse_state_values(mdp: SparseMDP) -> np.ndarray:
    """V (S,) in float64 (a sparse LU), or V_t (H, S) with a horizon: the value baseline's V."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    S = len(mdp.states)
    contrib = mdp.tr_w * mdp.tr_r
    r_pi = np.bincount(mdp.tr_state, contrib, minlength=S).astype(float)
    r_pi[mdp.terminal] = 0.0
    alive = ~mdp.terminal[mdp.tr_next] & ~mdp.terminal[mdp.tr_state]
    Ppi = sp.csr_matrix((mdp.tr_w[alive], (mdp.tr_state[alive], mdp.tr_next[alive])), shape=(S, S))
    if mdp.horizon is not None:
        V = np.zeros((mdp.horizon + 1, S))
        for t in range(mdp.horizon - 1, -1, -1):
            V[t] = r_pi + mdp.gamma * (Ppi @ V[t + 1])
        return V[:-1]
    A = (sp.identity(S, format="csc") - mdp.gamma * Ppi.tocsc()).tocsc()
    try:
        with np.errstate(all="ignore"):
            V = spla.spsolve(A, r_pi)
    except Exception:  # noqa: BLE001 - a singular system: no finite values
        V = np.full(S, np.nan)
    V = np.asarray(V, dtype=float).reshape(S)
    return np.where(np.isfinite(V), V, 0.0)  # unsolvable (never terminating): baseline 0
