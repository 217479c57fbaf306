r"""The matrix engine pair at the point: the Bellman recursion in tangent mode, and the policy
gradient theorem in adjoint (occupancy) mode, on the policy-induced chain as arrays.

Both read a :class:`~pgverify.chain.PointChain` (the case at its point: P_pi, r_pi, rho0, gamma
and every ingredient's local derivatives, never one sympy object per entry).  With
A = I - gamma P_pi on the reachable non-terminal states (Sutton & Barto 2018, eq. 3.14):

*tangent* (engine ``bellman``)
    V from A V = r_pi (or V_t = r_pi + gamma P_pi V_{t+1} backwards with a horizon), then the
    differentiated recursion A dV = local, one right-hand side per (family, parameter): the
    policy term sum_a dpi Q, the dynamics term sum_a pi sum_s' dP (r + gamma V'), the reward term
    sum_a pi sum_s' P dr, the discount term dgamma sum_a pi sum_s' P V'.  dJ = drho0 . V +
    rho0 . dV.  Where one column per parameter is out of budget, the tangent is taken along a few
    random directions v (``info["directions"]``): one column per (family, direction), and the
    adjoint's gradient must satisfy grad J . v = dJ(theta + eps v)/d eps for each.
*adjoint* (engine ``occupancy``)
    the discounted occupancy d from A^T d = rho0 (Pr(s_t = s) gamma^t forwards with a horizon),
    J = d . r_pi, and the gradient as the policy gradient theorem sum_s d(s) sum_a dpi(a|s) Q(s, a)
    plus the start, dynamics, reward and discount terms (Sutton et al. 2000, Theorem 1).

Numbers: *exact* (python-flint rationals: ``fmpq_mat.solve`` by p-adic lifting for the linear
systems, rational loops otherwise) or *certified* (float64: scipy's sparse LU, then a rigorous
bound).  The certificate of a solve x of A x = b: A is a Z-matrix, and ||A^-1||_inf <= kappa with
kappa = 1/(1 - gamma) when gamma < 1 (P_pi is substochastic), or kappa = max w / min (A w) for
a computed w > 0 whose A w is proved positive (A is then a nonsingular M-matrix and A^-1 >= 0;
Berman & Plemmons 1994, ch. 6).  The residual b - A x is computed with running error bounds
from the exact model's rounding (:class:`pgverify.montecarlo.certified.Bounded`; Higham 2002,
ch. 3), so |x - x_exact| <= kappa max|residual| (and ||d - d_exact||_1 <= kappa ||residual||_1
for the transposed system).  Every result carries the bound.
"""
from __future__ import annotations

from dataclasses import dataclass

import flint
import numpy as np

from ..chain import PointChain
from ..errors import EngineError
from ..montecarlo.certified import ETA, ROUND, SAFETY, Bounded
from .base import FAMILIES, EngineResult

__all__ = ["tangent", "adjoint", "MatrixSolution", "solve_values", "random_directions",
           "EXACT_DENSE_LIMIT", "TANGENT_WORK_LIMIT"]

#: Largest chain solved exactly with a dense rational matrix (about 0.8 s at 1000 states).
EXACT_DENSE_LIMIT = 2000
#: Most work for a tangent with one column per parameter (columns x parameters x transitions x
#: steps, or x states^2 for an exact solve: about 2 microseconds a unit in exact rationals);
#: beyond it the tangent runs along random directions.
TANGENT_WORK_LIMIT = {"exact": 1e5, "float": 1e7}
#: Chains up to this many states are solved by a sparse LU in float64, larger ones by GMRES.
SPLU_STATES = 3000
#: Fixed-point sweeps x = b + gamma P_pi x tried before GMRES on large chains.
NEUMANN_SWEEPS = 4000
#: How many random directions, and the range of their integer entries.
DIRECTIONS = 2
DIRECTION_RANGE = 2**20

ZERO = flint.fmpq(0)
ONE = flint.fmpq(1)


class Uncertified(EngineError):
    """The float64 result cannot be certified (the message says why)."""


# ---------------------------------------------------------------------------
# Number systems: exact object arrays of fmpq, or Bounded float64 arrays
# ---------------------------------------------------------------------------
class _Exact:
    kind = "exact"

    def arr(self, values):
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out

    def zeros(self, shape):
        out = np.empty(shape, dtype=object)
        out.fill(ZERO)
        return out

    def const(self, x):
        return x

    def group_sum(self, x, idx, size):
        out = self.zeros((size,) + x.shape[1:])
        if len(idx):
            np.add.at(out, idx, x)
        return out

    def total(self, x):
        return sum(x.tolist(), ZERO) if x.ndim == 1 else self.group_sum(x, np.zeros(len(x), dtype=np.int64), 1)[0]

    def scalar_zero(self):
        return ZERO


class _Float:
    kind = "float"

    def arr(self, values, errors=None):
        return Bounded(values, errors)

    def zeros(self, shape):
        return Bounded(np.zeros(shape))

    def const(self, x):
        return x

    def group_sum(self, x: Bounded, idx, size):
        """Sums of the entries of x by group; each group of k entries adds gamma_(k-1) sum |x|."""
        if not len(idx):
            return Bounded(np.zeros((size,) + x.v.shape[1:]))
        counts = np.bincount(idx, minlength=size).astype(float)
        g = counts * ROUND / (1 - counts * ROUND)  # gamma_k >= gamma_(k-1)
        if x.v.ndim == 1:
            v = np.bincount(idx, x.v, minlength=size)
            e = np.bincount(idx, np.broadcast_to(x.e, x.v.shape), minlength=size)
            a = np.bincount(idx, np.abs(x.v), minlength=size)
            return Bounded(v, e + g * a)
        # rows summed by group as one sparse product with the 0/1 group matrix (np.add.at was most of a
        # horizon case's time); any order of summation is within gamma_(k-1) sum |x|
        import scipy.sparse as sp

        n_rows = len(idx)
        G = sp.csr_matrix((np.ones(n_rows), (np.asarray(idx), np.arange(n_rows))), shape=(size, n_rows))
        flat = x.v.reshape(n_rows, -1)
        v = (G @ flat).reshape((size,) + x.v.shape[1:])
        e = (G @ np.broadcast_to(x.e, x.v.shape).reshape(n_rows, -1)).reshape(v.shape)
        a = (G @ np.abs(flat)).reshape(v.shape)
        return Bounded(v, e + g.reshape((size,) + (1,) * (v.ndim - 1)) * a)

    def total(self, x: Bounded):
        return x.sum(0)

    def scalar_zero(self):
        return Bounded(0.0)


def _ops(chain):
    return _Exact() if chain.kind == "exact" else _Float()


def _values(chain, ops, name):
    v = getattr(chain, name)
    if ops.kind == "exact":
        return ops.arr(v)
    return Bounded(v, chain.errors[name])


def _coo(chain, ops, name):
    c = getattr(chain, name)
    if ops.kind == "exact":
        return c.idx, c.par, ops.arr(c.val)
    return c.idx, c.par, Bounded(c.val, c.err)


def _scalar(chain, ops, x, err=None):
    if ops.kind == "exact":
        return x
    return Bounded(np.asarray(x, dtype=float), np.asarray(err if err is not None else 0.0))


# ---------------------------------------------------------------------------
# The chain's pieces
# ---------------------------------------------------------------------------
@dataclass
class _Pieces:
    """Arrays shared by both engines (values at the point, in the chain's number system)."""

    ops: object
    S: int
    m: int
    T: int
    pair_state: np.ndarray
    tr_pair: np.ndarray
    tr_next: np.ndarray
    tr_state: np.ndarray
    live: np.ndarray  # transitions whose next state is in the chain
    pi: object
    P: object
    r: object
    rho0: object
    gamma: object
    piP: object  # pi[pair] * P, per transition
    r_pi: object  # (S,)


def _pieces(chain: PointChain) -> _Pieces:
    ops = _ops(chain)
    pi, P, r = (_values(chain, ops, k) for k in ("pi", "P", "r"))
    rho0 = _values(chain, ops, "rho0")
    gamma = _scalar(chain, ops, chain.gamma, chain.errors.get("gamma"))
    tr_state = chain.pair_state[chain.tr_pair]
    piP = pi[chain.tr_pair] * P
    r_pi = ops.group_sum(piP * r, tr_state, chain.S)
    return _Pieces(ops, chain.S, len(chain.pair_state), chain.T, chain.pair_state, chain.tr_pair,
                   chain.tr_next, tr_state, chain.tr_next >= 0, pi, P, r, rho0, gamma, piP, r_pi)


def _next_values(pc: _Pieces, V):
    """V(next state) per transition (0 where the next state is terminal)."""
    ops = pc.ops
    nxt = np.where(pc.live, pc.tr_next, 0)
    if ops.kind == "exact":
        out = V[nxt] if pc.S else ops.zeros((pc.T,) + V.shape[1:])
        if V.ndim == 1:
            out = out.copy()
            out[~pc.live] = ZERO
        else:
            out = out.copy()
            out[~pc.live, :] = ZERO
        return out
    if pc.S == 0:
        return Bounded(np.zeros((pc.T,) + V.v.shape[1:]))
    g = V[nxt]
    mask = pc.live if V.v.ndim == 1 else pc.live[:, None]
    return Bounded(np.where(mask, g.v, 0.0), np.where(mask, np.broadcast_to(g.e, g.v.shape), 0.0))


def _apply_P(pc: _Pieces, x):
    """(P_pi x)(s) = sum over transitions from s of pi P x(next)."""
    xn = _next_values(pc, x)
    w = pc.piP if _ndim(xn) == 1 else _col(pc.piP)
    return pc.ops.group_sum(w * xn, pc.tr_state, pc.S)


def _ndim(x):
    return x.v.ndim if isinstance(x, Bounded) else x.ndim


def _apply_PT(pc: _Pieces, y):
    """(P_pi^T y)(s') = sum over transitions into s' of y(s) pi P."""
    w = pc.piP * y[pc.tr_state]
    live = np.nonzero(pc.live)[0]
    return pc.ops.group_sum(w[live], pc.tr_next[live], pc.S)


def _col(x):
    """A per-transition vector as a column (for 2-D right-hand sides)."""
    if isinstance(x, Bounded):
        return Bounded(x.v[:, None], np.broadcast_to(x.e, x.v.shape)[:, None])
    return x[:, None]


def _Q(pc: _Pieces, V_next):
    """Q(s, a) per pair, and the target r + gamma V(next) per transition."""
    target = pc.r + pc.gamma * _next_values(pc, V_next) if V_next is not None else pc.r
    Q = pc.ops.group_sum(pc.P * target, pc.tr_pair, pc.m)
    return Q, target


# ---------------------------------------------------------------------------
# Linear solves (no horizon)
# ---------------------------------------------------------------------------
@dataclass
class MatrixSolution:
    """The values V (and the solver, reused by the engines)."""

    V: object
    solver: object
    kappa: float | None = None  # certified: bound on ||A^-1||_inf


def _exact_matrix(pc: _Pieces, transpose=False):
    S = pc.S
    M = flint.fmpq_mat(S, S)
    for i in range(S):
        M[i, i] = ONE
    g = pc.gamma
    live = np.nonzero(pc.live)[0]
    for t in live.tolist():
        i, j = int(pc.tr_state[t]), int(pc.tr_next[t])
        if transpose:
            i, j = j, i
        M[i, j] = M[i, j] - g * pc.piP[t]
    return M


class _ExactSolver:
    def __init__(self, pc):
        if pc.S > EXACT_DENSE_LIMIT:
            raise EngineError(f"{pc.S} states are over the exact solver's limit ({EXACT_DENSE_LIMIT}); "
                              "use the certified mode")
        self.pc = pc
        self.A = _exact_matrix(pc)
        self._N = self._a = self._NT = None

    def solve(self, B, transpose=False):
        """A X = B (or A^T X = B) for an object array B of shape (S,) or (S, c).

        Solved over the integers: A = N / a and B = M / b with integer N, M (a, b the lcm of the
        denominators), then N X = (a / b) M by FLINT's p-adic (Dixon) solver; 4x faster than
        ``fmpq_mat.solve`` when B carries V's large denominators (1000 states: 4 s against 17 s).
        """
        S = self.pc.S
        if self._N is None:
            self._N, self._a = self.A.numer_denom()
        if transpose and self._NT is None:
            self._NT = self._N.transpose()
        N = self._NT if transpose else self._N
        cols = 1 if B.ndim == 1 else B.shape[1]
        flat = B.reshape(-1).tolist()
        b = flint.fmpz(1)
        for x in flat:
            q = x.q
            if q != 1:
                b = b.lcm(q)
        M = flint.fmpz_mat(S, cols, [int(x * b) for x in flat])
        try:
            X = N.solve(M * self._a)
        except ZeroDivisionError:
            raise EngineError("the linear system I - gamma P_pi is singular (some reachable state "
                              "never ends and is not discounted)") from None
        inv_b = flint.fmpq(1, b)
        out = np.empty((S, cols), dtype=object)
        for i in range(S):
            for c in range(cols):
                out[i, c] = X[i, c] * inv_b
        return out[:, 0] if B.ndim == 1 else out


class _FloatSolver:
    """scipy's sparse LU of A, and the certificate kappa >= ||A^-1||_inf."""

    def __init__(self, pc):
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        self.pc = pc
        S = pc.S
        live = np.nonzero(pc.live)[0]
        vals = pc.gamma.v * pc.piP.v[live]
        self.M = sp.csr_matrix((vals, (pc.tr_state[live], pc.tr_next[live])), shape=(S, S))  # gamma P_pi
        self._MT = None
        A = sp.identity(S, format="csr") - self.M
        self.A = A
        self.lu = None
        if S <= SPLU_STATES:
            try:
                self.lu = splu(A.tocsc())
            except RuntimeError as exc:  # exactly singular in float64
                raise Uncertified(f"the linear system I - gamma P_pi is singular in float64 ({exc})") from None
        self.kappa = self._kappa()

    def raw_solve(self, rhs: np.ndarray, transpose=False) -> np.ndarray:
        """A solution in float64 (not yet certified): sparse LU, or on large chains (a sparse LU of a
        random graph fills in: 91 s at 10^4 states) fixed-point sweeps, then GMRES if needed."""
        if self.lu is not None:
            return self.lu.solve(rhs, trans="T" if transpose else "N")
        from scipy.sparse.linalg import gmres

        # x = b + gamma P_pi x by fixed-point sweeps first (they converge at the rate gamma, and at
        # 10^5 states are several times faster than scipy's GMRES); GMRES finishes what they leave
        if transpose and self._MT is None:
            self._MT = self.M.T.tocsr()
        M = self._MT if transpose else self.M
        x = rhs.copy()
        converged = False
        for _ in range(NEUMANN_SWEEPS):
            x_new = rhs + M @ x
            change = np.abs(x_new - x).max() if x.size else 0.0
            x = x_new
            if not np.isfinite(change):
                break
            if change <= 1e-15 * max(np.abs(x).max(), 1e-300):
                converged = True
                break
        if converged:
            return x
        A = self.A.T.tocsr() if transpose else self.A
        cols = rhs.reshape(len(rhs), -1)
        start = x.reshape(len(rhs), -1) if np.all(np.isfinite(x)) else np.zeros_like(cols)
        out = np.empty_like(cols)
        for c in range(cols.shape[1]):
            b = cols[:, c]
            if not np.any(b):
                out[:, c] = 0.0
                continue
            out[:, c], _info = gmres(A, b, x0=start[:, c], rtol=1e-13, atol=0.0, restart=60, maxiter=30)
        return out.reshape(rhs.shape)

    def _residual(self, x: np.ndarray, b: Bounded, transpose=False) -> Bounded:
        """b - A x (or b - A^T x) with a bound, for an exact float array x."""
        pc = self.pc
        X = Bounded(x)
        PX = _apply_PT(pc, X) if transpose else _apply_P(pc, X)
        return b - (X - pc.gamma * PX)

    def _kappa(self) -> float:
        pc = self.pc
        g_up = float(pc.gamma.v + pc.gamma.e)
        bounds = []
        if g_up < 1:
            bounds.append(1.0 / (1.0 - g_up) * (1 + 4 * ROUND))
            if bounds[0] <= 1e3:  # good enough: no extra solve for a sharper kappa
                return bounds[0]
        w = self.raw_solve(np.ones(pc.S))
        if np.all(np.isfinite(w)) and np.all(w > 0):
            Aw = self._residual(w, Bounded(np.zeros(pc.S)))  # = -A w
            lower = -(Aw.v) - np.broadcast_to(Aw.e, Aw.v.shape)
            c = float(lower.min()) if pc.S else 1.0
            if c > 0:
                bounds.append(float(w.max()) / c * (1 + 4 * ROUND))
        if not bounds:
            raise Uncertified("cannot certify the linear system I - gamma P_pi: no w > 0 with "
                              "(I - gamma P_pi) w > 0 was found (the chain may not terminate)")
        return min(bounds)

    def solve(self, b: Bounded, transpose=False) -> Bounded:
        """The solution with a certified bound: uniform |x - x_exact| <= bound (1-norm when transposed)."""
        x = self.raw_solve(b.v, transpose)
        if not np.all(np.isfinite(x)):
            raise Uncertified("the float64 solve overflowed")
        res = self._residual(x, b, transpose)
        up = np.abs(res.v) + np.broadcast_to(res.e, res.v.shape)
        if transpose:  # ||A^-T||_1 = ||A^-1||_inf: a bound on the 1-norm of the error, per column
            beta = self.kappa * up.sum(0) * (1 + up.shape[0] * ROUND) * SAFETY
        else:
            beta = self.kappa * up.max(0) * SAFETY if up.size else np.zeros(up.shape[1:])
        if not np.all(np.isfinite(beta)):
            raise Uncertified("the error bound of a solve overflowed")
        return Bounded(x, np.broadcast_to(beta, x.shape).copy())


def solve_values(chain: PointChain) -> tuple[MatrixSolution, _Pieces]:
    """V by the linear system (no horizon), with the solver both engines reuse, and the chain's
    pieces in its number system: pass the pair as ``solution=`` to :func:`tangent` and :func:`adjoint`."""
    pc = _pieces(chain)
    solver = _ExactSolver(pc) if pc.ops.kind == "exact" else _FloatSolver(pc)
    V = solver.solve(pc.r_pi) if pc.S else pc.ops.zeros(0)
    return MatrixSolution(V, solver, getattr(solver, "kappa", None)), pc


# ---------------------------------------------------------------------------
# Local derivative terms
# ---------------------------------------------------------------------------
def _local_columns(chain, pc: _Pieces, Q, target, V_next, columns):
    """The local terms of the differentiated recursion, one column per (family, parameter or direction).

    ``columns`` is a list of (family, W) where W maps a parameter index to its weight in the
    column (an integer direction, or a one-hot vector).  Returns an (S, c) array.
    """
    ops = pc.ops
    S = pc.S
    out = []
    pidx, ppar, pval = _coo(chain, ops, "d_pi")
    Pidx, Ppar, Pval = _coo(chain, ops, "d_P")
    ridx, rpar, rval = _coo(chain, ops, "d_r")
    for family, W in columns:
        if family == "policy":
            w = _scale(ops, pval, W[ppar]) * Q[pidx]
            col = ops.group_sum(w, pc.pair_state[pidx], S)
        elif family == "dynamics":
            w = _scale(ops, Pval, W[Ppar]) * target[Pidx] * pc.pi[pc.tr_pair[Pidx]]
            col = ops.group_sum(w, pc.tr_state[Pidx], S)
        elif family == "reward":
            w = _scale(ops, rval, W[rpar]) * pc.piP[ridx]
            col = ops.group_sum(w, pc.tr_state[ridx], S)
        else:  # discount
            dg = _dgamma_dot(chain, ops, W)
            if V_next is None:
                col = ops.zeros(S)
            else:
                col = ops.group_sum(pc.piP * _next_values(pc, V_next), pc.tr_state, S) * dg
        out.append(col)
    return _stack(ops, out, S)


def _scale(ops, vals, weights):
    if ops.kind == "exact":
        return vals * weights
    return vals * np.asarray(weights, dtype=float)


def _dgamma_dot(chain, ops, W):
    if ops.kind == "exact":
        return sum((x * W[j] for j, x in chain.d_gamma.items()), ZERO)
    v = sum((x * float(W[j]) for j, x in chain.d_gamma.items()), 0.0)
    e = sum((abs(float(W[j])) * chain.d_gamma_err[j] + 2 * ROUND * abs(x * float(W[j]))
             for j, x in chain.d_gamma.items()), 0.0) * SAFETY + ETA
    return Bounded(v, e)


def _stack(ops, cols, S):
    if ops.kind == "exact":
        out = np.empty((S, len(cols)), dtype=object)
        for c, col in enumerate(cols):
            out[:, c] = col
        return out
    return Bounded(np.stack([c.v for c in cols], axis=1) if cols else np.zeros((S, 0)),
                   np.stack([np.broadcast_to(c.e, c.v.shape) for c in cols], axis=1) if cols else np.zeros((S, 0)))


def _start_term(chain, ops, V, W):
    """sum_s drho0(s) . W V(s) for a weight vector W over parameters."""
    idx, par, val = _coo(chain, ops, "d_rho0")
    if not len(idx):
        return ops.scalar_zero()
    return ops.total(_scale(ops, val, W[par]) * V[idx])


def _present_families(chain):
    fam = []
    if len(chain.d_pi):
        fam.append("policy")
    if len(chain.d_P):
        fam.append("dynamics")
    if len(chain.d_r):
        fam.append("reward")
    if chain.d_gamma:
        fam.append("discount")
    return fam


def random_directions(n: int, k: int = DIRECTIONS, seed: int = 0) -> list[list[int]]:
    """k integer directions with entries uniform in [-2^20, 2^20] (numpy's PCG64, seeded; reported)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-DIRECTION_RANGE, DIRECTION_RANGE, size=(k, n), endpoint=True).tolist()


# ---------------------------------------------------------------------------
# The engines
# ---------------------------------------------------------------------------
def _backward(pc: _Pieces, H: int):
    """V_t for t = 0..H (V_H = 0), and Q_t, target_t for t < H."""
    ops = pc.ops
    V = [None] * (H + 1)
    Qs, targets = [None] * H, [None] * H
    V[H] = ops.zeros(pc.S)
    for t in range(H - 1, -1, -1):
        Qs[t], targets[t] = _Q(pc, V[t + 1])
        V[t] = ops.group_sum(pc.pi * Qs[t], pc.pair_state, pc.S)
    return V, Qs, targets


def tangent(chain: PointChain, *, solution=None, directions=None) -> EngineResult:
    """J and the gradient by the Bellman recursion and its derivative (forward / tangent mode).

    ``directions``: None for one column per parameter, else a list of integer vectors; the
    result's ``grad`` is then None and ``info["directional"]`` holds dJ/dv per direction and
    ``info["directional_families"]`` the families along each.
    """
    pc = solution[1] if solution is not None else _pieces(chain)
    ops = pc.ops
    n = chain.n
    fams = _present_families(chain)
    if directions is None:
        Ws = [np.eye(n, dtype=np.int64)[j] for j in range(n)]
    else:
        Ws = [np.asarray(v, dtype=object if ops.kind == "exact" else float) for v in directions]
    if ops.kind == "exact" and directions is None:
        Ws = [np.array([int(x) for x in W], dtype=object) for W in Ws]
    columns = [(f, W) for W in Ws for f in fams]
    H = chain.horizon
    if H is None:
        if solution is None:
            solution = solve_values(chain)
        sol = solution[0]
        V = sol.V
        Q, target = _Q(pc, V)
        if columns and pc.S:
            L = _local_columns(chain, pc, Q, target, V, columns)
            dV = sol.solver.solve(L)
        else:
            dV = ops.zeros((pc.S, len(columns)))
        V0 = V
    else:
        V_all, Qs, targets = _backward(pc, H)
        dV = ops.zeros((pc.S, len(columns)))
        for t in range(H - 1, -1, -1):
            L = _local_columns(chain, pc, Qs[t], targets[t], V_all[t + 1], columns) if columns else dV
            dV = L + pc.gamma * _apply_P(pc, dV) if columns else dV
        V0 = V_all[0]
    J = ops.total(pc.rho0 * V0) if pc.S else ops.scalar_zero()
    contrib = ops.total(_col_rho(pc) * dV) if columns and pc.S else None
    # gather per (direction / parameter) the families
    per = []
    for W in Ws:
        fam = {f: ops.scalar_zero() for f in FAMILIES}
        fam["start"] = _start_term(chain, ops, V0, W) if pc.S else ops.scalar_zero()
        for c, (f, W2) in enumerate(columns):
            if W2 is W:
                fam[f] = contrib[c]
        per.append(fam)
    total = [_sum_families(ops, fam) for fam in per]
    info = {"implementation": f"sparse matrices ({'exact rationals' if ops.kind == 'exact' else 'float64, certified'})",
            "states": pc.S, "transitions": pc.T, "form": "time-indexed" if H is not None else "linear system"}
    if directions is None:
        families = {f: [per[j][f] for j in range(n)] for f in FAMILIES}
        return EngineResult("bellman", J, total, families, info=info)
    info["directions"] = directions
    info["directional"] = total
    info["directional_families"] = per
    return EngineResult("bellman", J, None, None, info=info)


def _col_rho(pc):
    return _col(pc.rho0) if isinstance(pc.rho0, Bounded) else pc.rho0[:, None]


def _split(ops, arr) -> list:
    """An (n,) array of results as a list of scalars (Bounded scalars in float)."""
    if ops.kind == "exact":
        return list(arr)
    e = np.broadcast_to(arr.e, arr.v.shape)
    return [Bounded.scalar(v, x) for v, x in zip(arr.v.tolist(), e.tolist())]


def _sum_families(ops, fam):
    out = ops.scalar_zero()
    for f in FAMILIES:
        out = out + fam[f]
    return out


def adjoint(chain: PointChain, *, solution=None) -> EngineResult:
    """J = d . r_pi and the gradient by the policy gradient theorem in occupancy form."""
    pc = solution[1] if solution is not None else _pieces(chain)
    ops = pc.ops
    n = chain.n
    H = chain.horizon
    fam = {f: ops.zeros(n) for f in FAMILIES}
    if H is None:
        if solution is None:
            solution = solve_values(chain)
        sol = solution[0]
        V = sol.V
        d = sol.solver.solve(pc.rho0, transpose=True) if pc.S else ops.zeros(0)
        steps = [(d, V, _Q(pc, V))]
        V0 = V
    else:
        V_all, Qs, targets = _backward(pc, H)
        steps = []
        mu = pc.rho0
        gt = ops.const(ONE) if ops.kind == "exact" else Bounded(1.0)
        for t in range(H):
            w = mu * gt
            steps.append((w, V_all[t + 1], (Qs[t], targets[t])))
            mu = _apply_PT(pc, mu)
            gt = gt * pc.gamma
        V0 = V_all[0]
    J = ops.scalar_zero()
    for w, V_next, (Q, target) in steps:
        J = J + _contract_total(ops, w, pc.r_pi, H is None)
        _contract(chain, pc, w, Q, target, V_next, fam, H is None)
    start = _start_grad(chain, pc, V0)
    fam["start"] = start
    total = fam["start"]
    for f in FAMILIES[1:]:
        total = total + fam[f]
    families = {f: _split(ops, fam[f]) for f in FAMILIES}
    grad = _split(ops, total)
    info = {"implementation": f"sparse matrices ({'exact rationals' if ops.kind == 'exact' else 'float64, certified'})",
            "form": "discounted occupancy" if H is None else "time-indexed", "states": pc.S}
    return EngineResult("occupancy", J, grad, families, info=info)


def _contract_total(ops, w, x, d_from_solve):
    """sum_s w(s) x(s); with a solved occupancy, its 1-norm error bound enters as beta max |x|."""
    if ops.kind == "exact":
        return ops.total(w * x)
    if not len(w.v):
        return Bounded(0.0)
    if d_from_solve:
        beta = float(np.max(w.e)) if np.size(w.e) else 0.0
        core = (Bounded(w.v) * x).sum(0)
        return Bounded(core.v, core.e + beta * float(np.max(x.upper())) * SAFETY)
    return (w * x).sum(0)


def _contract(chain, pc, w, Q, target, V_next, fam, d_from_solve):
    """Add sum_s w(s) [local terms] into fam (family -> (n,) arrays), per parameter."""
    ops = pc.ops
    n = chain.n
    terms = []
    pidx, ppar, pval = _coo(chain, ops, "d_pi")
    if len(pidx):
        terms.append(("policy", pc.pair_state[pidx], ppar, pval * Q[pidx]))
    Pidx, Ppar, Pval = _coo(chain, ops, "d_P")
    if len(Pidx):
        terms.append(("dynamics", pc.tr_state[Pidx], Ppar, Pval * target[Pidx] * pc.pi[pc.tr_pair[Pidx]]))
    ridx, rpar, rval = _coo(chain, ops, "d_r")
    if len(ridx):
        terms.append(("reward", pc.tr_state[ridx], rpar, rval * pc.piP[ridx]))
    if chain.d_gamma and V_next is not None:
        EV = ops.group_sum(pc.piP * _next_values(pc, V_next), pc.tr_state, pc.S)
        base = ops.total(w * EV) if ops.kind == "exact" else _contract_total(ops, w, EV, d_from_solve)
        for j, x in chain.d_gamma.items():
            dg = x if ops.kind == "exact" else Bounded(x, chain.d_gamma_err[j])
            fam["discount"] = _add_at(ops, fam["discount"], j, base * dg, n)
    for f, state, par, x in terms:
        if ops.kind == "exact":
            fam[f] = fam[f] + ops.group_sum(w[state] * x, par, n)
            continue
        if d_from_solve:
            # |sum_s (d - d_exact)(s) L_j(s)| <= ||d - d_exact||_1 max_s |L_j(s)|
            beta = float(np.max(w.e)) if np.size(w.e) else 0.0
            core = ops.group_sum(Bounded(w.v[state]) * x, par, n)
            maxL = _max_state_sum(x.upper(), par, state, n, max(pc.S, 1))
            fam[f] = fam[f] + Bounded(core.v, core.e + beta * maxL * SAFETY)
        else:
            fam[f] = fam[f] + ops.group_sum(w[state] * x, par, n)


def _max_state_sum(upper, par, state, n, S):
    """Per parameter j, an upper bound on max_s sum_(entries of j at s) upper."""
    keys = par.astype(np.int64) * S + state
    uniq, inv = np.unique(keys, return_inverse=True)
    counts = np.bincount(inv).astype(float)
    sums = np.bincount(inv, upper) * (1 + (counts + 1) * ROUND * 2)
    out = np.zeros(n)
    np.maximum.at(out, uniq // S, sums)
    return out


def _add_at(ops, arr, j, x, n):
    if ops.kind == "exact":
        arr = arr.copy()
        arr[j] = arr[j] + x
        return arr
    one = np.zeros(n)
    one[j] = 1.0
    return arr + Bounded(one * x.v, one * x.e)


def _start_grad(chain, pc, V0):
    ops = pc.ops
    n = chain.n
    idx, par, val = _coo(chain, ops, "d_rho0")
    if not len(idx):
        return ops.zeros(n)
    return ops.group_sum(val * V0[idx], par, n)
