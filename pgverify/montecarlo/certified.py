r"""Means and variances of the estimators in float64, vectorised, with a certified error bound.

Where exact arithmetic is out of budget (FrozenLake with a horizon of 100: thousands of
state-steps times hundreds of parameters times a hundred steps), the recursions of
:mod:`pgverify.montecarlo.recursive` are run in float64 over whole arrays: per time step,
each expectation E_s[c(s, a, s') m(s')] is one matrix product of the table pi P r^k
(rows (s, a), columns s') with the next step's moments (columns: parameters), times powers
of the score grad log pi(a|s) summed over a.

Every number is carried with a bound on its distance from the exact value (running error
analysis, Higham 2002, *Accuracy and Stability of Numerical Algorithms*, ch. 3): inputs are
the exact values rounded once to float64 (error <= u |x|, u = 2^-53); a sum or product adds
the operands' bounds as first-order perturbation theory does, plus u times the result; a
matrix product of inner dimension k adds gamma_k |A| |B| (gamma_k = k u / (1 - k u), valid
for any order of summation); a sum of k terms adds gamma_(k-1) times the sum of their
absolute values.  Linear systems (no horizon) are solved by LAPACK and then certified: with
A = I - lambda P_pi and a vector w > 0 checked to satisfy A w >= 1 (with the rounding of that
check bounded), A is a nonsingular M-matrix, A^-1 >= 0 and A^-1 1 <= w, so
|y - y_computed| <= w max |b - A y_computed|, the residual itself bounded as above.  The
bounds are computed in float64 too; they are multiplied by :data:`SAFETY` to cover the
rounding of the bounds themselves (relative 1e-11 at most over these operation counts).
Underflow is bounded too: a rounding that lands among the subnormal numbers errs by at most
2^-1074 more, which every product and conversion adds (sums of floats never underflow).  When the
computation cannot be certified -- a value or bound overflows, a linear system is too
ill-conditioned for the certificate, or a variance's bound exceeds a millionth of it -- the
estimator gets no moments from this route (``None``, with the reason), and the check falls back
to the exact families for the mean and to the sample for the standard error.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .estimators import extra_terms_needed
from .recursive import _MAIN, COMPONENTS, _closure, _group_moments, _key, _reachable, needed_pairs

__all__ = ["Bounded", "certified_moments", "FLOAT_WORK_LIMIT"]

U = 2.0**-53
ETA = 2.0**-1074  # the spacing of the subnormal numbers: the most an underflowing rounding adds
#: a certified variance is used only when its bound is within this fraction of it (a variance
#: of 0 only when its bound is within TIGHT^2 of the largest variance of the estimator)
TIGHT = 1e-6
ROUND = U * (1 + 1e-9)  # |fl(z) - z| <= u |z| <= ROUND |fl(z)|
SAFETY = 1 + 1e-6
#: float work budget (multiply-adds of the matrix products, summed over time steps)
FLOAT_WORK_LIMIT = 2e11


class Uncertified(Exception):
    """The float64 route cannot certify its result (the message says why)."""


def _gamma(k: int) -> float:
    return k * U / (1 - k * U)


class Bounded:
    """A float64 array ``v`` and a bound ``e`` (same shape, broadcastable) on |v - exact|.

    ``FLOOR`` is what each rounding adds for underflow (at least 2^-1074, the most an underflowing
    rounding errs beyond the relative u).  A subclass may raise it to keep the bounds out of the
    subnormal range, where float64 arithmetic is 10 to 30 times slower (:mod:`.sparsemoments`).
    Arithmetic returns the class of the left operand.
    """

    __slots__ = ("v", "e")
    FLOOR = ETA

    def __init__(self, v, e=None):
        self.v = np.asarray(v, dtype=float)
        self.e = np.zeros_like(self.v) if e is None else np.asarray(e, dtype=float)

    @classmethod
    def scalar(cls, v: float, e: float) -> "Bounded":
        """A scalar Bounded holding plain floats (no array made: for many scalars); arithmetic on it
        returns ordinary (0-d) Bounded values."""
        out = cls.__new__(cls)
        out.v = v
        out.e = e
        return out

    @classmethod
    def of(cls, x):
        """Exact numbers (Fraction, mpmath mpf, or object arrays of them) rounded to float64."""
        try:
            if isinstance(x, np.ndarray):
                v = np.array([float(y) for y in x.flat], dtype=float).reshape(x.shape)
            else:
                v = np.asarray(float(x))
        except OverflowError:
            raise Uncertified("an input is beyond float64's range") from None
        return cls(v, ROUND * np.abs(v) + cls.FLOOR)

    def _rounded(self, v, e):
        return type(self)(v, e + ROUND * np.abs(v) + self.FLOOR)

    def __add__(self, o):
        if not isinstance(o, Bounded):
            o = type(self)(o)  # an exact float constant
        return self._rounded(self.v + o.v, self.e + o.e)

    __radd__ = __add__

    def __neg__(self):
        return type(self)(-self.v, self.e)

    def __sub__(self, o):
        return self + (-o if isinstance(o, Bounded) else -np.asarray(o, dtype=float))

    def __rsub__(self, o):
        return (-self) + o

    def __mul__(self, o):
        if not isinstance(o, Bounded):  # an exact constant (int, or float that is exact)
            c = np.asarray(o, dtype=float)
            return self._rounded(self.v * c, np.abs(c) * self.e)
        v = self.v * o.v
        return self._rounded(v, (np.abs(self.v) + self.e) * o.e + np.abs(o.v) * self.e)

    __rmul__ = __mul__

    def sum(self, axis):
        k = self.v.shape[axis]
        return type(self)(self.v.sum(axis), self.e.sum(axis) + _gamma(max(k - 1, 0)) * np.abs(self.v).sum(axis))

    def reshape(self, *shape):
        return type(self)(self.v.reshape(*shape), np.broadcast_to(self.e, self.v.shape).reshape(*shape))

    def __getitem__(self, item):
        return type(self)(self.v[item], np.broadcast_to(self.e, self.v.shape)[item])

    def upper(self):
        """An upper bound on |exact|."""
        return np.abs(self.v) + self.e


def matmul(A: Bounded, B: Bounded, _left=None) -> Bounded:
    """A @ B with the bound |A| (e_B + gamma_k |B|) + e_A (|B| + e_B).

    ``_left`` may hold A's contiguous [|A|, e_A] (built once per matrix by the callers that
    reuse it); operands are made contiguous, since BLAS falls back to a slow loop on
    broadcast (stride-0) arrays.
    """
    k = A.v.shape[-1]
    if _left is None:
        _left = np.ascontiguousarray(np.hstack([np.abs(A.v), np.broadcast_to(A.e, A.v.shape)]))
    Bv = np.ascontiguousarray(B.v)
    Be = np.broadcast_to(B.e, Bv.shape)
    absB = np.abs(Bv)
    right = np.ascontiguousarray(np.vstack([Be + _gamma(k) * absB, absB + Be]))
    # each of the k products may underflow (ETA each), and the sum's rounding may (ETA)
    return Bounded(np.ascontiguousarray(A.v) @ Bv, _left @ right + (k + 1) * ETA)


# The one-step recursion of each functional (see pgverify.montecarlo.recursive): c_i as a list
# of monomials and M_ik as lists of monomials, a monomial being (coefficient name, powers of
# (r, x, v, p, q)) with r the reward, x = grad log pi(a|s), v = V(s), p = grad log P, q = grad r.
_R, _X, _V, _P, _Q = (1, 0, 0, 0, 0), (0, 1, 0, 0, 0), (0, 0, 1, 0, 0), (0, 0, 0, 1, 0), (0, 0, 0, 0, 1)
_ONE = (0, 0, 0, 0, 0)
_RX = (1, 1, 0, 0, 0)
_C = {
    "H": [("1", _R)], "S": [("1", _X)], "HS": [("1", _RX)], "RTG": [("1", _RX)], "ND": [("1", _RX)],
    "CB": [("1", _RX), ("-J", _X)], "VB": [("1", _RX), ("-1", (0, 1, 1, 0, 0))],
    "DYN": [("1", (1, 0, 0, 1, 0))], "PATH": [("1", _Q)], "T": [],
}
_M = {
    "HS": {"S": [("1", _R)], "H": [("g", _X)]}, "RTG": {"H": [("g", _X)]}, "ND": {"H": [("g", _X)]},
    "CB": {"H": [("g", _X)]}, "VB": {"H": [("g", _X)]}, "DYN": {"H": [("g", _P)]}, "T": {"H": [("1", _ONE)]},
    "H": {}, "S": {}, "PATH": {},
}
_LAMBDA = {"H": "g", "S": "1", "HS": "g", "RTG": "g", "ND": "1", "CB": "g", "VB": "g", "DYN": "g",
           "PATH": "g", "T": "g"}


def _full_M(i):
    """M_ik including the diagonal M_ii = lambda_i."""
    return {**_M[i], i: [(_LAMBDA[i], _ONE)]}


def _names(c):
    """A coefficient as a tuple of names (a single name in the tables above)."""
    return (c,) if isinstance(c, str) else c


def _times(m1, m2):
    (c1, p1), (c2, p2) = m1, m2
    return (_names(c1) + _names(c2), tuple(a + b for a, b in zip(p1, p2)))


def certified_moments(mdp, names, *, J, V, group: int = 8):
    """name -> (mean, variance, how, mean bound, variance bound), lists of floats per parameter.

    Same contract as :func:`pgverify.montecarlo.recursive.recursive_moments` (``mdp`` exact
    arrays, ``J`` and ``V`` exact), with each value's certified absolute error bound added.
    Returns None when the work would exceed :data:`FLOAT_WORK_LIMIT`.  An estimator whose
    moments cannot be certified gets ``(None, None, reason, None, None)``.
    """
    try:
        return _certified_moments(mdp, names, J=J, V=V, group=group)
    except Uncertified as exc:
        return {name: (None, None, f"sampled only: float64 could not certify the moments ({exc})", None, None)
                for name in names}


def _certified_moments(mdp, names, *, J, V, group: int = 8):
    n = len(mdp.parameters)
    S, A = mdp.pi.shape
    extras = extra_terms_needed(mdp)
    extra_set = {"H", "DYN", "PATH", "T"} if extras else set()
    combos = {name: {_MAIN[name]} | extra_set for name in names if name in _MAIN}
    grouped = [name for name in names if name.startswith("group")]
    if grouped:
        combos["_group"] = {"HS", "S", "H"} | extra_set
    order = [c for c in COMPONENTS if c in _closure(set().union(*combos.values()))] if combos else []
    pairs = needed_pairs(combos.values())
    T_len = mdp.horizon if mdp.horizon is not None else 1
    width = n if n else 1
    if S * A * S * width * 3 * (len(order) + len(pairs)) * T_len > FLOAT_WORK_LIMIT:
        return None

    B = Bounded.of
    pi, P, r = B(mdp.pi), B(mdp.P), B(mdp.r)
    W0 = pi.reshape(S, A, 1) * P  # pi(a|s) P(s'|s, a)
    W = {0: W0}
    x = B(mdp.dlog_pi) if n else Bounded(np.zeros((S, A, 1)))
    p = B(mdp.dlog_P) if extras else None
    q = B(mdp.dr) if extras else None
    g, Jb = B(mdp.gamma), B(J)
    coefs = {"1": Bounded(1.0), "g": g, "-J": -Jb, "-1": Bounded(-1.0)}

    def coef(c):
        first, *rest = _names(c)
        out = coefs[first]
        for name in rest:
            out = out * coefs[name]
        return out

    def power(base, cache, k, make):
        if k not in cache:
            cache[k] = make() if k == 0 else power(base, cache, k - 1, make) * base
        return cache[k]

    Wc, Xc, Pc, Qc = W, {}, {}, {}

    def Wk(k):
        return power(r, Wc, k, lambda: W0)

    Wf = {}

    def Wflat(k):
        """W_k as an (S A, S) matrix, with its contiguous [|W_k|, e] for matmul."""
        if k not in Wf:
            w = Wk(k).reshape(S * A, S)
            w = Bounded(np.ascontiguousarray(w.v), np.ascontiguousarray(w.e))
            Wf[k] = (w, np.ascontiguousarray(np.hstack([np.abs(w.v), w.e])))
        return Wf[k]

    def Xk(k):
        return power(x, Xc, k, lambda: Bounded(np.ones((S, A, 1))))

    def Pk(k):
        return power(p, Pc, k, lambda: Bounded(np.ones((1, 1, 1, 1))))

    def Qk(k):
        return power(q, Qc, k, lambda: Bounded(np.ones((1, 1, 1, 1))))

    live_mask = ~np.asarray(mdp.terminal, dtype=bool)

    class Step:
        """The expectations of one time step, E_s[monomial(s, a, s') m(s')], with shared pieces cached."""

        def __init__(self, v_t):
            self.cache = {}
            self.v_t = v_t  # Bounded (S, 1) or None

        def expect(self, mono, key, m):
            cn, (kr, kx, kv, kp, kq) = mono
            ck = (kr, kp, kq, kx, key)
            if ck not in self.cache:
                base_key = (kr, kp, kq, None, key)
                if base_key not in self.cache:
                    w = Wk(kr)
                    if kp or kq:
                        t = w.reshape(S, A, S, 1) * Pk(kp) * Qk(kq)
                        if m is not None:
                            t = t * m.reshape(1, 1, S, m.v.shape[-1])
                        base = t.sum(2)
                    elif m is None:
                        base = w.sum(2).reshape(S, A, 1)
                    else:
                        flat_w, left = Wflat(kr)
                        base = matmul(flat_w, m, left).reshape(S, A, m.v.shape[-1])
                    self.cache[base_key] = base
                base = self.cache[base_key]
                self.cache[ck] = (base * Xk(kx) if kx else base).sum(1)  # (S, width)
            out = self.cache[ck]
            if kv:
                vv = self.v_t
                for _ in range(kv):
                    out = out * vv
            return out * coef(cn)

    def first_rhs(step, i, m1_next, with_diag):
        tot = None
        for mono in _C[i]:
            tot = _acc(tot, step.expect(mono, None, None))
        for k, monos in _full_M(i).items():
            if k == i and not with_diag:
                continue
            for mono in monos:
                tot = _acc(tot, step.expect(mono, ("1", k), m1_next[k]))
        return tot if tot is not None else Bounded(np.zeros((S, 1)))

    def second_rhs(step, i, j, m1_next, m2_next, with_diag):
        tot = None
        Mi, Mj = _full_M(i), _full_M(j)
        for ci in _C[i]:
            for cj in _C[j]:
                tot = _acc(tot, step.expect(_times(ci, cj), None, None))
        for ci in _C[i]:
            for l_, monos in Mj.items():
                for mu in monos:
                    tot = _acc(tot, step.expect(_times(ci, mu), ("1", l_), m1_next[l_]))
        for cj in _C[j]:
            for k, monos in Mi.items():
                for mu in monos:
                    tot = _acc(tot, step.expect(_times(cj, mu), ("1", k), m1_next[k]))
        for k, mk in Mi.items():
            for l_, ml in Mj.items():
                kl = _key(k, l_, COMPONENTS_ORDER)
                if (k, l_) == (i, j) and not with_diag:
                    continue
                for mu in mk:
                    for nu in ml:
                        tot = _acc(tot, step.expect(_times(mu, nu), ("2", kl), m2_next[kl]))
        return tot if tot is not None else Bounded(np.zeros((S, 1)))

    failed = set()
    if mdp.horizon is not None:
        zero = Bounded(np.zeros((S, 1)))
        m1 = {i: zero for i in order}
        m2 = {pr: zero for pr in pairs}
        for t in range(mdp.horizon - 1, -1, -1):
            v_t = B(V[t]).reshape(S, 1) if V is not None and "VB" in order else None
            step = Step(v_t)
            new1 = {i: _zero_terminal(first_rhs(step, i, m1, True), live_mask) for i in order}
            new2 = {(i, j): _zero_terminal(second_rhs(step, i, j, m1, m2, True), live_mask) for i, j in pairs}
            m1, m2 = new1, new2
        how = "float64 backward induction"
    else:
        reach = [s for s in _reachable(mdp) if not mdp.terminal[s]]
        v_t = B(V).reshape(S, 1) if V is not None and "VB" in order else None
        step = Step(v_t)
        Ppi = W0.sum(1)  # (S, S)
        solver = _Solver(Ppi, reach, S, _terminates(mdp, reach))
        m1, m2 = {}, {}
        for i in order:
            if any(k in failed for k in COMPONENTS[i]):
                failed.add(i)
                continue
            sol = solver.solve(coef(_LAMBDA[i]), first_rhs(step, i, m1, False))
            if sol is None:
                failed.add(i)
            else:
                m1[i] = sol
        for i, j in pairs:
            subs = {_key(k, l_, COMPONENTS_ORDER) for k in _full_M(i) for l_ in _full_M(j)} - {(i, j)}
            if i in failed or j in failed or not subs <= set(m2):
                continue  # a part is infinite: so is this pair (see `complete` below)
            lam = coef(_LAMBDA[i]) * coef(_LAMBDA[j])
            sol = solver.solve(lam, second_rhs(step, i, j, m1, m2, False))
            if sol is not None:
                m2[(i, j)] = sol
        how = "float64 linear algebra"

    rho = B(mdp.rho0).reshape(S, 1)
    drho = B(mdp.dlog_rho0) if n else Bounded(np.zeros((S, 1)))
    dg = B(mdp.dgamma).reshape(1, width) if n else Bounded(np.zeros((1, 1)))
    return finish(Bounded, names, grouped, combos, m1, m2, rho, drho, dg, extras, width, how, n, group,
                  lambda fr: Bounded.of(Fraction(fr)))


def finish(B, names, grouped, combos, m1, m2, rho, drho, dg, extras, width, how, n, group, of):
    """The last step of the certified recursions, shared by the dense tables (here) and the sparse
    ones (:mod:`pgverify.montecarlo.sparsemoments`): the functionals' moments at time 0 weighted by
    the start distribution (``rho``; ``drho`` and ``dg`` the start and discount scores the estimators
    add when ``extras``), then each estimator's (mean, variance) by :func:`assemble`.  ``B`` is the
    bounded-number class of the caller's numbers, ``of`` makes one of an exact number."""
    one = B(1.0)

    def combination(main):
        def comb(_s=None):
            co = {main: one}
            if extras:
                co["DYN"] = co.get("DYN", B(0.0)) + one
                co["PATH"] = co.get("PATH", B(0.0)) + one
                co["T"] = co.get("T", B(0.0)) + dg
                co["H"] = co.get("H", B(0.0)) + drho
            return co
        return comb

    def widen(b):
        if b is None:
            return B(np.zeros(width))
        return B(np.broadcast_to(b.v, (width,)).copy(), np.broadcast_to(b.e, (width,)).copy())

    def start_mean(comb):
        tot = None
        for i, c in comb(None).items():
            tot = _acc(tot, (rho * c * m1[i]).sum(0))
        return widen(tot)

    def start_second(comb, comb2=None):
        comb2 = comb2 or comb
        tot = None
        for i, ci in comb(None).items():
            for j, cj in comb2(None).items():
                tot = _acc(tot, (rho * ci * cj * m2[_key(i, j, COMPONENTS_ORDER)]).sum(0))
        return widen(tot)

    def complete(combo):
        """Whether every first and second moment of the functionals in ``combo`` is finite."""
        return combo <= set(m1) and all(_key(i, j, COMPONENTS_ORDER) in m2 for i in combo for j in combo)

    return assemble(names, grouped, combos, complete, combination, start_mean, start_second, of, one, how, n, group)


def assemble(names, grouped, combos, complete, combination, start_mean, start_second, of, one, how, n, group):
    """Each estimator's (mean, variance) from the moments of the functionals it combines: the last
    step of the certified recursions, shared by the dense tables (here) and the sparse ones
    (:mod:`pgverify.montecarlo.sparsemoments`).  ``complete(combo)`` says whether every moment the
    combination needs is finite; ``of`` makes a bounded number of an exact one."""

    class _F:
        @staticmethod
        def of(fr):
            return of(fr)

    out = {}
    infinite = (None, None, "none: the estimator sums infinitely many terms "
                            "(a reachable part of the chain never terminates)", None, None)
    for name in names:
        if name in _MAIN:
            if not complete(combos[name]):
                out[name] = infinite
                continue
            comb = combination(_MAIN[name])
            mean = start_mean(comb)
            var = start_second(comb) - mean * mean
            out[name] = _pack(mean, var, how, n)
    for name in grouped:
        if not complete(combos["_group"]):
            out[name] = infinite
            continue
        mean, var = _group_moments(name, group, combination("HS"), start_mean, start_second, _F, one)
        out[name] = _pack(mean, var, f"{how} and independence", n)
    scale = max((abs(v) for entry in out.values() if entry[1] is not None for v in entry[1]), default=0.0)
    return {name: _tight(entry, scale) for name, entry in out.items()}


COMPONENTS_ORDER = list(COMPONENTS)


def _acc(tot, term):
    return term if tot is None else tot + term


def _zero_terminal(b, live_mask):
    v = np.where(live_mask[:, None], b.v, 0.0)
    e = np.where(live_mask[:, None], np.broadcast_to(b.e, b.v.shape), 0.0)
    return Bounded(v, e)


def _pack(mean, var, how, n):
    """The output tuple; the tightness of the bounds is judged afterwards by :func:`_tight`."""
    mean_e, var_e = mean.e * SAFETY, var.e * SAFETY
    if not all(np.isfinite(a).all() for a in (mean.v, var.v, mean_e, var_e)):
        return None, None, "sampled only: float64 could not certify the moments (a value overflows)", None, None
    return list(mean.v), list(var.v), how, list(mean_e), list(var_e)


def _tight(entry, scale):
    """Keep an entry whose variance bounds are within TIGHT of each variance, or, for a variance
    near 0, within TIGHT^2 of ``scale`` (the largest variance of any estimator here)."""
    mean, var, how, mean_e, var_e = entry
    if var is None:
        return entry
    var, var_e = np.array(var), np.array(var_e)
    loose = var_e > TIGHT * (np.abs(var) + TIGHT * scale) + 1e-300
    if loose.any():
        j = int(np.argmax(np.where(loose, var_e / np.maximum(np.abs(var), 1e-300), 0)))
        return mean, None, (f"{how}, mean certified; variance sampled only: its float64 bound is too loose to "
                            f"use ({var_e[j]:.2g} on {var[j]:.3g})"), mean_e, None
    if not (var != 0).any():
        return mean, list(var), f"{how} (certified within the stated absolute bounds)", mean_e, list(var_e)
    worst = max(((e / abs(v)) for v, e in zip(var, var_e) if v), default=0.0)
    label = (f"{how} (certified: each variance within a relative {worst:.1g} of the exact value"
             + (", and within the stated absolute bounds where it is 0)" if (var == 0).any() else ")"))
    return mean, list(var), label, mean_e, list(var_e)


def _terminates(mdp, reach):
    """Whether every state in ``reach`` reaches a terminal state with positive probability."""
    step = np.any((np.asarray(mdp.pi != 0)[:, :, None]) & np.asarray(mdp.P != 0), axis=1)  # (S, S)
    good = np.asarray(mdp.terminal, dtype=bool).copy()
    while True:
        new = good | (step & good[None, :]).any(axis=1)
        if (new == good).all():
            break
        good = new
    return bool(good[list(reach)].all()) if len(reach) else True


class _Solver:
    """(I - lambda P_pi) y = b on the reachable live states, solved in float64 and certified."""

    def __init__(self, Ppi: Bounded, reach, S, terminates):
        self.idx = np.array(reach, dtype=int)
        self.P = Ppi[np.ix_(self.idx, self.idx)]
        self.S = S
        self.terminates = terminates
        self.cache = {}

    def _system(self, lam: Bounded):
        key = (float(lam.v), float(lam.e))
        if key not in self.cache:
            m = len(self.idx)
            A = Bounded(np.eye(m)) - lam * self.P
            try:
                w = np.linalg.solve(A.v, np.ones(m)) if m else np.zeros(0)
            except np.linalg.LinAlgError:
                raise Uncertified("a linear system is singular in float64") from None
            w = w * 1.001 + 1e-12
            Aw = matmul(A, Bounded(w.reshape(m, 1)))
            ok = bool(m == 0 or (np.all(w > 0) and np.all(Aw.v - Aw.e >= 1)))
            self.cache[key] = (A, w, ok)
        return self.cache[key]

    def solve(self, lam: Bounded, b: Bounded):
        if float(lam.v) == 1.0 and not self.terminates:
            return None  # singular: a reachable part never terminates
        m = len(self.idx)
        width = b.v.shape[-1]
        out_v = np.zeros((self.S, width))
        out_e = np.zeros((self.S, width))
        if m:
            A, w, ok = self._system(lam)
            if not ok:
                raise Uncertified("a linear system is too ill-conditioned for the certificate")
            bb = b[self.idx]
            y = np.linalg.solve(A.v, bb.v)
            res = bb - matmul(A, Bounded(y))
            bound = w[:, None] * res.upper().max(axis=0, keepdims=True)
            out_v[self.idx] = y
            out_e[self.idx] = bound
        return Bounded(out_v, out_e)
