r"""Means and variances of the estimators from the sparse tables, in float64 with certified bounds.

The moment recursions of :mod:`pgverify.montecarlo.recursive` (one step: X_i = c_i + sum_k M_ik X'_k,
so m_i(s) = E_s[c_i + sum_k M_ik m_k(s')] and m_ij(s) = E_s[c_i c_j + ... + sum_kl M_ik M_jl m_kl(s')]),
run as in :mod:`pgverify.montecarlo.certified` (float64, every number with a bound on its distance from
the exact value: running error analysis, Higham 2002, *Accuracy and Stability of Numerical
Algorithms*, ch. 3), but over the sparse tables of :class:`~pgverify.montecarlo.sparse.SparseMDP`
instead of dense (S, A, S, n) arrays.  Each expectation E_s[monomial(s, a, s') m(s')] is one of

* a sparse matrix product W_k m, with W_k(s, s') = sum_a pi(a|s) P(s'|s, a) r^k (one row per state,
  as many non-zeros as the state has successors), when the monomial has no score factor;
* a gather over the non-zero scores, when it has one: grad log pi(a|s) is non-zero only for the
  parameters of state s (tabular policies), so E_s[x(s, a) ... m(s')] touches only the (s, j) with
  x(s, a)_j != 0 and costs (transitions x their scores), not (states x parameters);
* a per-state sum, when there is no m.

So a time step costs about (non-zeros of P_pi) x (parameters) per functional instead of the dense
route's states x actions x states x parameters: FrozenLake 8x8 (horizon 100) goes from about 30 s
to about 1.2 s of CPU time on this project's 2-core machine.  Without a horizon the linear systems
(I - lambda P_pi) y = b are solved by an LU (LAPACK up to 1500 states, else SuperLU) and certified as
in :mod:`~pgverify.montecarlo.certified`: a vector w > 0 with A w >= 1
(checked with its rounding bounded) makes A an M-matrix with A^-1 1 <= w, so
|y - y_computed| <= w max |b - A y_computed|.

Inputs: the sparse tables' floats with the bounds that :func:`~pgverify.montecarlo.sparse.sparse_tabulate`
carries from ball arithmetic (pi P, r, the scores, rho0, gamma).  The baselines J and V are the float64
numbers the sampled estimators use, taken as exact constants: the moments are those of the estimators
as sampled (an unbiased estimator's mean does not depend on its baseline).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .certified import (ROUND, Bounded, Uncertified, _C, _full_M, _gamma, _LAMBDA, _names, _times,
                        finish)
from .estimators import extra_terms_needed
from .recursive import _MAIN, COMPONENTS, _closure, _key, needed_pairs
from .sparse import _reachable

__all__ = ["sparse_moments", "sparse_moments_work", "SPARSE_WORK_LIMIT", "SPARSE_MEMORY_LIMIT"]

#: work budget: (non-zeros of P_pi + states) x parameters x (functionals + pairs) x (horizon or 1).
#: FrozenLake 8x8 (horizon 100): 1.2e8, about 1.5 s on this project's 2-core machine; the random
#: tabular case of 100 states with a horizon of 50: 3.4e8, 2-5 s, which left the sampling 128 episodes
#: of its 5 s budget (the check's budget counts the moments too): over; Taxi-v4 (horizon 200): 2.5e10,
#: about 0.8 s per time step there, 160 s in all: over
SPARSE_WORK_LIMIT = 1.5e8
#: memory budget (bytes) of the moment arrays: states x parameters x (functionals + pairs) x 32
#: (values and bounds, this step's and the next one's)
SPARSE_MEMORY_LIMIT = 4e8
_ORDER = list(COMPONENTS)
#: what each rounding adds for underflow here, instead of 2^-1074: a bound of 2^-1074 (or a product
#: of one) is a subnormal number, and arithmetic on subnormals made the Taxi recursion 10-30 times
#: slower.  A larger addend only widens the bounds (by about 1e-181 per operation), and it also
#: covers the underflow of the bounds' own products (each lost term is below 2^-1074)
TINY = 2.0**-600


class _B(Bounded):
    """:class:`~pgverify.montecarlo.certified.Bounded` with :data:`TINY` as the underflow addend."""

    __slots__ = ()
    FLOOR = TINY


def _plan(mdp, names):
    """(combos, order, pairs): the functionals and second moments the estimators ``names`` need."""
    extras = extra_terms_needed(mdp)
    extra_set = {"H", "DYN", "PATH", "T"} if extras else set()
    combos = {name: {_MAIN[name]} | extra_set for name in names if name in _MAIN}
    if any(name.startswith("group") for name in names):
        combos["_group"] = {"HS", "S", "H"} | extra_set
    order = [c for c in COMPONENTS if c in _closure(set().union(*combos.values()))] if combos else []
    return combos, order, needed_pairs(combos.values())


def sparse_moments_work(mdp, names) -> tuple[float, float]:
    """(work, bytes) of :func:`sparse_moments` on ``mdp`` for the estimators ``names`` (see the limits)."""
    _, order, pairs = _plan(mdp, names)
    S = len(mdp.states)
    live = ~mdp.terminal[mdp.tr_state]
    edges = len(np.unique(mdp.tr_state[live] * S + mdp.tr_next[live]))
    width = max(mdp.n, 1)
    k = len(order) + len(pairs)
    return float(edges + S) * width * k * (mdp.horizon or 1), float(S) * width * k * 32


class _Tables:
    """The sparse tables restricted to the reachable non-terminal ("live") states, as Bounded arrays."""

    def __init__(self, mdp):
        S = len(mdp.states)
        self.n = mdp.n
        reach = np.zeros(S, dtype=bool)
        reach[_reachable(mdp)] = True
        live = reach & ~mdp.terminal
        self.live = np.nonzero(live)[0]
        self.L = len(self.live)
        pos = np.full(S, -1, dtype=np.int64)
        pos[self.live] = np.arange(self.L)
        keep = np.nonzero(pos[mdp.tr_state] >= 0)[0]
        self.keep = keep  # transition index in mdp order, for every transition from a live state
        self.ts = pos[mdp.tr_state[keep]]
        self.tn = pos[mdp.tr_next[keep]]  # -1: terminal (or unreachable: weight 0) next state
        self.ends = mdp.terminal[mdp.tr_next[keep]]
        w_err = mdp.tr_w_err if mdp.tr_w_err is not None else _unknown(mdp.tr_w)
        r_err = mdp.tr_r_err if mdp.tr_r_err is not None else _unknown(mdp.tr_r)
        self.w = _B(mdp.tr_w[keep], _floor(w_err[keep]))
        self.r = _B(mdp.tr_r[keep], _floor(r_err[keep]))
        self._R, self._WR, self._Wsum, self._Wmat, self._F, self._G = {}, {}, {}, {}, {}, {}
        self.patterns = {}  # scatter patterns of _Sum.total, by the identity of their row arrays
        self.mdp = mdp
        self.row_count = int(np.bincount(self.ts, minlength=self.L).max(initial=0))

    def _rpow(self, k):
        if k not in self._R:
            self._R[k] = self.r if k == 1 else self._rpow(k - 1) * self.r
        return self._R[k]

    def WR(self, k) -> Bounded:
        """pi(a|s) P(s'|s, a) r^k per transition."""
        if k not in self._WR:
            self._WR[k] = self.w if k == 0 else self.w * self._rpow(k)
        return self._WR[k]

    def Wsum(self, k) -> Bounded:
        """sum_{a, s'} pi P r^k per live state, (L, 1)."""
        if k not in self._Wsum:
            t = self.WR(k)
            self._Wsum[k] = _segment_sum(self.ts, t, self.L, self.row_count).reshape(self.L, 1)
        return self._Wsum[k]

    def Wmat(self, k) -> "_Matrix":
        """W_k(s, s') = sum_a pi P r^k over live s, s' (L, L), with its bounds."""
        if k not in self._Wmat:
            t = self.WR(k)
            ok = self.tn >= 0
            key = self.ts[ok] * self.L + self.tn[ok]
            uniq, inv = np.unique(key, return_inverse=True)
            dup = int(np.bincount(inv).max(initial=1))
            v = np.bincount(inv, t.v[ok], minlength=len(uniq))
            e = np.bincount(inv, np.broadcast_to(t.e, t.v.shape)[ok], minlength=len(uniq))
            e = e + _gamma(dup - 1) * np.bincount(inv, np.abs(t.v[ok]), minlength=len(uniq))
            self._Wmat[k] = _Matrix(uniq // self.L, uniq % self.L, v, e, self.L)
        return self._Wmat[k]

    def gather(self, kr, kx, kp, kq, with_m):
        """The scattered terms of E_s[pi P r^kr x^kx p^kp q^kq (m(s'))]: (transitions, rows, columns,
        next states, the values without m), the transitions into terminal states left out when m is used."""
        key = (kr, kx, kp, kq, with_m)
        if key not in self._G:
            t, j, f = self.factor(kx, kp, kq)
            if with_m:
                ok = self.tn[t] >= 0
                t, j, f = t[ok], j[ok], f[ok]
            self._G[key] = (t, self.ts[t], j, self.tn[t], self.WR(kr)[t] * f)
        return self._G[key]

    def factor(self, kx, kp, kq):
        """x^kx p^kp q^kq per (transition, parameter) where it is not 0: (transition, parameter, Bounded)."""
        key = (kx, kp, kq)
        if key not in self._F:
            mdp = self.mdp
            parts = []
            if kx:
                parts.append((self._entries(mdp.x, mdp.tr_pair[self.keep]), kx))
            if kp:
                parts.append((self._entries(mdp.p, self.keep), kp))
            if kq:
                parts.append((self._entries(mdp.q, self.keep), kq))
            (t, j, val), k = parts[0]
            out = _power(val, k)
            flat = t * max(self.n, 1) + j
            for (t2, j2, val2), k2 in parts[1:]:
                flat2 = t2 * max(self.n, 1) + j2
                flat, ia, ib = np.intersect1d(flat, flat2, assume_unique=True, return_indices=True)
                out = out[ia] * _power(val2[ib], k2)
            self._F[key] = (flat // max(self.n, 1), flat % max(self.n, 1), out)
        return self._F[key]

    def _entries(self, csr, rows):
        """(item, parameter, Bounded value) of the rows' non-zeros, item = position in ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        cnt = csr.ptr[rows + 1] - csr.ptr[rows]
        item = np.repeat(np.arange(len(rows), dtype=np.int64), cnt)
        first = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(cnt, out=first[1:])
        at = csr.ptr[rows][item] + (np.arange(first[-1], dtype=np.int64) - first[:-1][item])
        err = csr.err[at] if csr.err is not None else _unknown(csr.val[at])
        return item, csr.par[at], _B(csr.val[at], _floor(err))


def _floor(e):
    """Input bounds raised to at least :data:`TINY` (out of the subnormal range)."""
    return np.maximum(np.asarray(e, dtype=float), TINY)


def _unknown(v):
    """The bound of a float array whose error was not given: one rounding."""
    return ROUND * np.abs(v) + TINY


def _product(factors) -> Bounded:
    """The product of scalar Bounded factors; exact (bound 0) when the factors are and so is their float product."""
    from fractions import Fraction

    out = factors[0]
    for f in factors[1:]:
        out = out * f
    if all(float(f.e) == 0 for f in factors):
        exact = Fraction(1)
        for f in factors:
            exact *= Fraction(float(f.v))
        if Fraction(float(out.v)) == exact:
            return _B(float(out.v))
    return out


def _scale(b: Bounded, c: Bounded) -> Bounded:
    """b c, without work when c is exactly 1 or -1."""
    if float(c.e) == 0 and abs(float(c.v)) == 1:
        return b if float(c.v) == 1 else -b
    return b * c


def _power(b: Bounded, k: int) -> Bounded:
    out = b
    for _ in range(k - 1):
        out = out * b
    return out


def _segment_sum(rows, t: Bounded, count: int, per_row: int) -> Bounded:
    """Per row, the sum of the entries of ``t`` with that row (any order: gamma_(k-1) sum |t|)."""
    e = np.broadcast_to(t.e, t.v.shape)
    v = np.bincount(rows, t.v, minlength=count)
    return _B(v, np.bincount(rows, e, minlength=count)
                   + _gamma(max(per_row - 1, 0)) * np.bincount(rows, np.abs(t.v), minlength=count))


class _Matrix:
    """A sparse (L, L) matrix W with entry bounds E, for products W m with their bounds.

    The bound of W m is |W| (e_m + gamma_k |m|) + E (|m| + e_m) + (k + 1) eta (k: the most non-zeros
    of a row).  When E <= delta |W| entrywise (delta tiny: the entries' own roundings) it is at most
    |W| ((1 + delta) e_m + (gamma_k + delta) |m|) + (k + 1) eta: one product with |W| instead of two.
    The products run in scipy's single-threaded sparse loop (a dense BLAS product was faster alone on
    small cases, but its threads stalled when the machine was busy: 3 to 15 s for FrozenLake 8x8).
    """

    def __init__(self, rows, cols, v, e, L):
        shape = (L, L)
        self.k = int(np.bincount(rows, minlength=L).max(initial=0))
        absv = np.abs(v)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(absv > 0, e / np.where(absv > 0, absv, 1.0), np.where(e > 0, np.inf, 0.0))
        self.delta = float(ratio.max(initial=0.0))
        self.A = sp.csr_matrix((v, (rows, cols)), shape=shape)
        self.absA = sp.csr_matrix((absv, (rows, cols)), shape=shape)
        self.E = sp.csr_matrix((e, (rows, cols)), shape=shape)

    def matmul_many(self, ms) -> list:
        """[W m for m in ms], as one product over the side-by-side columns."""
        if len(ms) == 1:
            return [self.matmul(ms[0])]
        widths = [m.v.shape[1] for m in ms]
        v = np.hstack([m.v for m in ms])
        e = np.hstack([np.broadcast_to(m.e, m.v.shape) for m in ms])
        out = self.matmul(_B(v, e))
        cuts = np.cumsum(widths)[:-1]
        return [_B(a, b) for a, b in zip(np.split(out.v, cuts, axis=1), np.split(out.e, cuts, axis=1))]

    def matmul(self, m: Bounded) -> Bounded:
        mv = m.v
        me = np.broadcast_to(m.e, mv.shape)
        absm = np.abs(mv)
        gk = _gamma(self.k)
        if self.delta <= 1e-6:
            bound = self.absA @ ((1 + self.delta) * me + (gk + self.delta) * absm)
        else:
            bound = self.absA @ (me + gk * absm) + self.E @ (absm + me)
        return _B(self.A @ mv, bound + (self.k + 1) * TINY)


def _full(x, shape):
    return x if x.shape == shape else np.broadcast_to(x, shape)


class _Coo:
    """Terms at (row, column) positions of a (L, width) result, duplicates to be summed."""

    __slots__ = ("rows", "cols", "val")

    def __init__(self, rows, cols, val: Bounded):
        self.rows, self.cols, self.val = rows, cols, val


class _Sum:
    """A sum of dense (L, width) terms and scattered terms, with the bound of every addition."""

    def __init__(self, L, width, patterns):
        self.L, self.width, self.patterns = L, width, patterns
        self.dense = None
        self.coo = []

    def add(self, term):
        if isinstance(term, _Coo):
            if len(term.rows):
                self.coo.append(term)
        else:
            self.dense = term if self.dense is None else self.dense + term

    def total(self) -> Bounded:
        L, width = self.L, self.width
        if self.dense is None:
            v, e = np.zeros((L, width)), np.zeros((L, width))
        else:
            v = np.array(np.broadcast_to(self.dense.v, (L, width)), dtype=float)
            e = np.array(np.broadcast_to(self.dense.e, (L, width)), dtype=float)
        if self.coo:
            key = (width, *(id(c.rows) for c in self.coo))
            if key not in self.patterns:
                flat = np.concatenate([c.rows * width + c.cols for c in self.coo])
                uniq, inv = np.unique(flat, return_inverse=True)
                # terms per position, besides the dense one; the row arrays are kept alive with the pattern
                self.patterns[key] = (uniq, inv, int(np.bincount(inv).max(initial=0)), [c.rows for c in self.coo])
            uniq, inv, k, _ = self.patterns[key]
            tv = np.concatenate([_full(c.val.v, c.rows.shape) for c in self.coo])
            te = np.concatenate([_full(c.val.e, c.rows.shape) for c in self.coo])
            sv = np.bincount(inv, tv, minlength=len(uniq))
            se = np.bincount(inv, te, minlength=len(uniq))
            sa = np.bincount(inv, np.abs(tv), minlength=len(uniq))
            vf, ef = v.reshape(-1), e.reshape(-1)
            base = vf[uniq]
            # k + 1 numbers summed in some order: gamma_k times the sum of their absolute values
            ef[uniq] = ef[uniq] + se + _gamma(k) * (np.abs(base) + sa)
            vf[uniq] = base + sv
        return _B(v, e)


def sparse_moments(mdp, names, *, J: float, V, group: int = 8):
    """name -> (mean, variance, how, mean bound, variance bound), lists of floats per parameter.

    The contract of :func:`pgverify.montecarlo.certified.certified_moments`, on a
    :class:`~pgverify.montecarlo.sparse.SparseMDP`; ``J`` (a float) and ``V`` (floats, (S,) or (H, S)
    over the case's states) are the baselines the sampled estimators use.  Returns None when the work
    or the memory would exceed :data:`SPARSE_WORK_LIMIT` / :data:`SPARSE_MEMORY_LIMIT`.
    """
    work, memory = sparse_moments_work(mdp, names)
    if work > SPARSE_WORK_LIMIT or memory > SPARSE_MEMORY_LIMIT:
        return None
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return _sparse_moments(mdp, names, J=J, V=V, group=group)
    except Uncertified as exc:
        return {name: (None, None, f"sampled only: float64 could not certify the moments ({exc})", None, None)
                for name in names}


def _sparse_moments(mdp, names, *, J, V, group):
    n = mdp.n
    width = max(n, 1)
    combos, order, pairs = _plan(mdp, names)
    extras = extra_terms_needed(mdp)
    grouped = [name for name in names if name.startswith("group")]
    tb = _Tables(mdp)
    L = tb.L
    g = _B(mdp.gamma, mdp.gamma_err)
    coefs = {"1": _B(1.0), "g": g, "-J": _B(-float(J)), "-1": _B(-1.0)}

    coef_cache = {}

    def coef(c):
        """The product of the named coefficients, exact where its float is (gamma = 1: every product is 1)."""
        c = _names(c)
        if c not in coef_cache:
            coef_cache[c] = _product([coefs[nm] for nm in c])
        return coef_cache[c]

    def wide(i):
        """Whether functional (or pair) ``i`` has a column per parameter (H and (H, H) have one column)."""
        return (i not in ("H", ("H", "H"))) and n > 0

    class Step:
        """The expectations of one time step (see the module docstring), with shared pieces cached."""

        def __init__(self, v_t):
            self.cache = {}
            self.v_t = v_t  # (L,) floats: V_t on the live states, or None

        def expect(self, mono, mkey, m):
            cn, (kr, kx, kv, kp, kq) = mono
            ck = (kr, kx, kp, kq, mkey)
            if ck not in self.cache:
                if kx or kp or kq:
                    t, rows, cols, nxt, base = tb.gather(kr, kx, kp, kq, m is not None)
                    if m is not None:
                        mc = cols if m.v.shape[1] > 1 else 0
                        base = base * _B(m.v[nxt, mc], np.broadcast_to(m.e, m.v.shape)[nxt, mc])
                    self.cache[ck] = _Coo(rows, cols, base)
                elif m is None:
                    self.cache[ck] = tb.Wsum(kr)
                else:
                    self.cache[ck] = tb.Wmat(kr).matmul(m)
            out = self.cache[ck]
            c = coef(cn)
            if isinstance(out, _Coo):
                val = out.val
                for _ in range(kv):
                    val = val * self.v_t[out.rows]
                return _Coo(out.rows, out.cols, _scale(val, c))
            for _ in range(kv):
                out = out * self.v_t.reshape(L, 1)
            return _scale(out, c)

    plans = {}

    def terms(q, with_diag):
        """The terms (monomial, key of the moment at s' or None) of the one-step recursion of ``q``: a
        functional (first moment) or a pair (second moment); ``with_diag``: with q's own term at s'."""
        if (q, with_diag) in plans:
            return plans[(q, with_diag)]
        out = []
        if isinstance(q, str):
            out += [(mono, None) for mono in _C[q]]
            out += [(mono, ("1", k)) for k, monos in _full_M(q).items() if with_diag or k != q for mono in monos]
        else:
            i, j = q
            Mi, Mj = _full_M(i), _full_M(j)
            out += [(_times(ci, cj), None) for ci in _C[i] for cj in _C[j]]
            out += [(_times(ci, mu), ("1", l_)) for ci in _C[i] for l_, monos in Mj.items() for mu in monos]
            out += [(_times(cj, mu), ("1", k)) for cj in _C[j] for k, monos in Mi.items() for mu in monos]
            out += [(_times(mu, nu), ("2", _key(k, l_, _ORDER))) for k, mk in Mi.items() for l_, ml in Mj.items()
                    if with_diag or (k, l_) != (i, j) for mu in mk for nu in ml]
        plans[(q, with_diag)] = out
        return out

    def rhs(step, q, ms, with_diag):
        tot = _Sum(L, width if wide(q) else 1, tb.patterns)
        for mono, mkey in terms(q, with_diag):
            tot.add(step.expect(mono, mkey, ms[mkey] if mkey is not None else None))
        return tot.total()

    def prefetch(step, quantities, ms):
        """Every product W_k m(s') of this time step, one batched product per k (fewer, wider calls)."""
        wanted = {}
        for q in quantities:
            for (cn, (kr, kx, kv, kp, kq)), mkey in terms(q, True):
                if mkey is not None and not (kx or kp or kq):
                    wanted.setdefault(kr, []).append(mkey) if mkey not in wanted.get(kr, []) else None
        for kr, keys in wanted.items():
            for mkey, out in zip(keys, tb.Wmat(kr).matmul_many([ms[k] for k in keys])):
                step.cache[(kr, 0, 0, 0, mkey)] = out

    V = None if V is None else np.asarray(V, dtype=float)
    failed = set()
    if mdp.horizon is not None:
        m1 = {i: _B(np.zeros((L, width if wide(i) else 1))) for i in order}
        m2 = {pr: _B(np.zeros((L, width if wide(pr) else 1))) for pr in pairs}
        for t in range(mdp.horizon - 1, -1, -1):
            v_t = V[min(t, len(V) - 1)][tb.live] if V is not None and "VB" in order else None
            step = Step(v_t)
            ms = {**{("1", i): m for i, m in m1.items()}, **{("2", pr): m for pr, m in m2.items()}}
            prefetch(step, order + pairs, ms)
            new1 = {i: rhs(step, i, ms, True) for i in order}
            new2 = {pr: rhs(step, pr, ms, True) for pr in pairs}
            m1, m2 = new1, new2
        how = "float64 backward induction over the sparse tables"
    else:
        step = Step(V[tb.live] if V is not None and "VB" in order else None)
        solver = _SparseSolver(tb, _terminates(mdp, tb))
        m1, m2 = {}, {}
        for i in order:
            if any(k in failed for k in COMPONENTS[i]):
                failed.add(i)
                continue
            sol = solver.solve(coef(_LAMBDA[i]), rhs(step, i, {("1", k): m for k, m in m1.items()}, False))
            if sol is None:
                failed.add(i)
            else:
                m1[i] = sol
        for i, j in pairs:
            subs = {_key(k, l_, _ORDER) for k in _full_M(i) for l_ in _full_M(j)} - {(i, j)}
            if i in failed or j in failed or not subs <= set(m2):
                continue
            ms = {**{("1", k): m for k, m in m1.items()}, **{("2", pr): m for pr, m in m2.items()}}
            sol = solver.solve(coef(_LAMBDA[i]) * coef(_LAMBDA[j]), rhs(step, (i, j), ms, False))
            if sol is not None:
                m2[(i, j)] = sol
        how = "float64 linear algebra over the sparse tables"

    rho_err = mdp.rho0_err if mdp.rho0_err is not None else _unknown(mdp.rho0)
    rho = _B(mdp.rho0[tb.live], _floor(rho_err[tb.live])).reshape(L, 1)
    if n and extras:
        item, par, val = tb._entries(mdp.drho, tb.live)
        dv, de = np.zeros((L, n)), np.zeros((L, n))
        dv[item, par], de[item, par] = val.v, np.broadcast_to(val.e, val.v.shape)
        drho = _B(dv, de)
        dge = mdp.dgamma_err if mdp.dgamma_err is not None else _unknown(mdp.dgamma)
        dg = _B(mdp.dgamma.reshape(1, n), _floor(dge).reshape(1, n))
    else:
        drho, dg = _B(np.zeros((L, 1))), _B(np.zeros((1, 1)))
    return finish(_B, names, grouped, combos, m1, m2, rho, drho, dg, extras, width, how, n, group, _B.of)


def _terminates(mdp, tb) -> bool:
    """Whether every live reachable state reaches a terminal state with positive probability."""
    pos_w = tb.w.v > 0
    good = np.zeros(tb.L, dtype=bool)
    good[np.unique(tb.ts[pos_w & tb.ends])] = True
    src, dst = tb.ts[pos_w & (tb.tn >= 0)], tb.tn[pos_w & (tb.tn >= 0)]
    while True:
        new = good.copy()
        new[src[good[dst]]] = True
        if (new == good).all():
            return bool(good.all())
        good = new


class _LU:
    """A float64 LU of A: dense (LAPACK) up to :attr:`DENSE` rows, where SuperLU's solves with hundreds
    of right-hand sides were 30 times slower (random graphs fill in), else sparse (SuperLU).  Only the
    solution matters: it is certified afterwards from its residual."""

    DENSE = 1500

    def __init__(self, A):
        import scipy.linalg as la

        self.dense = A.shape[0] <= self.DENSE
        if self.dense:
            M = A.toarray()
            self.lu = la.lu_factor(M, check_finite=True)
            if not np.all(np.isfinite(self.lu[0])) or np.any(np.diag(self.lu[0]) == 0):
                raise np.linalg.LinAlgError("singular")
        else:
            self.lu = spla.splu(A)

    def solve(self, b):
        import scipy.linalg as la

        return la.lu_solve(self.lu, b) if self.dense else self.lu.solve(b)


class _SparseSolver:
    """(I - lambda P_pi) y = b on the live states: a sparse LU in float64, certified (module docstring)."""

    def __init__(self, tb, terminates):
        self.tb = tb
        self.P = tb.Wmat(0)
        self.terminates = terminates
        self.cache = {}

    def _apply(self, lam: Bounded, y: np.ndarray) -> Bounded:
        """(I - lambda P) y for exact floats y, with its bound."""
        return _B(y) - lam * self.P.matmul(_B(y))

    def _system(self, lam: Bounded):
        key = (float(lam.v), float(lam.e))
        if key not in self.cache:
            L = self.tb.L
            P = sp.csc_matrix(self.P.A)
            A = (sp.identity(L, format="csc") - float(lam.v) * P).tocsc()
            try:
                lu = _LU(A)
                w = lu.solve(np.ones(L)) if L else np.zeros(0)
            except (RuntimeError, np.linalg.LinAlgError, ValueError):
                raise Uncertified("a linear system is singular in float64") from None
            w = w * 1.001 + 1e-12
            Aw = self._apply(lam, w.reshape(L, 1))
            ok = bool(L == 0 or (np.all(np.isfinite(w)) and np.all(w > 0) and np.all(Aw.v - Aw.e >= 1)))
            self.cache[key] = (lu, w, ok)
        return self.cache[key]

    def solve(self, lam: Bounded, b: Bounded):
        if float(lam.v) == 1.0 and not self.terminates:
            return None  # singular: a reachable part never terminates
        L = self.tb.L
        if not L:
            return _B(np.zeros(b.v.shape))
        lu, w, ok = self._system(lam)
        if not ok:
            raise Uncertified("a linear system is too ill-conditioned for the certificate")
        y = lu.solve(np.ascontiguousarray(b.v))
        y = y.reshape(b.v.shape)
        res = b - self._apply(lam, y)
        bound = w[:, None] * res.upper().max(axis=0, keepdims=True)
        return _B(y, bound)
