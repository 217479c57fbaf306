r"""Policy gradient estimators, computed per episode from sampled (or enumerated) episodes.

Every estimator returns an array of shape (episodes, parameters): one gradient estimate
per episode.  All work on the flat per-transition arrays of
:class:`~pgverify.montecarlo.sampler.Episodes` (no padding: per-transition terms, reward-to-go
by suffix sums within each episode, per-episode sums over each episode's segment) and on the
derivatives of :class:`~pgverify.montecarlo.tabular.TabularMDP`, so the same code runs on
float arrays (samples) and on exact object arrays (enumerated trajectories, for exact moments).
Notation: G_t = sum_{t' >= t} gamma^t' r_t' (discounted from 0), G = G_0,
score_t = grad log pi(a_t | s_t).

========================  ====================================================  =========
name                      per-episode estimate                                  source
========================  ====================================================  =========
``reinforce``             G sum_t score_t                                       Williams (1992)
``reward_to_go``          sum_t score_t G_t                                     Williams (1992); Sutton & Barto (2018) 13.3
``constant_baseline``     sum_t score_t (G_t - gamma^t b), b = J                Williams (1992)
``value_baseline``        sum_t score_t (G_t - gamma^t V_t(s_t))                Sutton & Barto (2018) 13.4
``no_discount_weighting`` sum_t score_t gamma^-t G_t (drops gamma^t)            Nota & Thomas (2020)
``group_mean``            score sum (G - mean of the group's G), own G included  Shao et al. (2024), GRPO
``group_mean_loo``        the same with the episode itself left out             Kool et al. (2019)
========================  ====================================================  =========

When the case needs them (rho0, P, r or gamma depend on theta) each estimator also adds
the start score G grad log rho0(s_0), the dynamics score sum_t grad log P(s_{t+1}|s_t,a_t) G_t
and the pathwise term sum_t (gamma^t grad r_t + t gamma^(t-1) grad gamma r_t), so that the
unbiased ones estimate the whole gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ESTIMATORS", "UNBIASED", "estimate", "extra_terms_needed"]

ESTIMATORS = ("reinforce", "reward_to_go", "constant_baseline", "value_baseline", "no_discount_weighting",
              "group_mean", "group_mean_loo")
#: unbiased for every case (no_discount_weighting is unbiased only when gamma = 1;
#: group_mean is biased by the factor (G - 1) / G)
UNBIASED = ("reinforce", "reward_to_go", "constant_baseline", "value_baseline", "group_mean_loo")


def extra_terms_needed(mdp) -> bool:
    """True when rho0, P, r or gamma depend on theta at the point (non-zero derivatives).

    Remembered on ``mdp``: on exact (object) arrays the scan costs about a second at FrozenLake 8x8.
    """
    known = getattr(mdp, "_extras_needed", None)
    if known is None and _is_sparse(mdp):
        known = mdp.extras_needed()
        mdp._extras_needed = known
    elif known is None:
        known = any(np.count_nonzero(x) for x in (mdp.dlog_rho0, mdp.dlog_P, mdp.dr, mdp.dgamma))
        mdp._extras_needed = known
    return known


def _is_sparse(mdp) -> bool:
    return hasattr(mdp, "tr_key")  # a pgverify.montecarlo.sparse.SparseMDP


#: transitions x parameters per slice in _sum_rows (8 MB of float64)
SLICE = 2**20


@dataclass
class _Pieces:
    """Per-transition arrays (N transitions, flat as in Episodes) and per-episode returns."""

    s: np.ndarray  # (N,) s_t
    a: np.ndarray  # (N,) a_t
    s2: np.ndarray  # (N,) s_{t+1}
    t: np.ndarray  # (N,) the step t
    disc: np.ndarray  # (L,) gamma^t for t < L (the longest episode)
    dt: np.ndarray  # (N,) gamma^t of each transition
    G_t: np.ndarray  # (N,) sum_{t' >= t} gamma^t' r_t' within the episode
    G: np.ndarray  # (E,) G_0 (zero for an episode of 0 steps)
    zero: object  # 0 in the arrays' number type


def _per_episode(ep, x: np.ndarray, zero) -> np.ndarray:
    """Sums of the rows of a per-transition array x (N, ...) over each episode: (E, ...).

    ``np.add.reduceat`` over the episodes' start offsets, the non-empty ones only (for an empty
    segment reduceat returns the next row, not 0); an episode of 0 steps sums to ``zero``.
    """
    return _segment_sums(x, ep.lengths, ep.offsets, zero)


def _segment_sums(x, lengths, offsets, zero):
    E = len(lengths)
    nonempty = lengths > 0
    if E and nonempty.all():
        return np.add.reduceat(x, offsets[:-1], axis=0)
    out = np.zeros((E,) + x.shape[1:], dtype=x.dtype)
    if x.dtype == object:
        out.fill(zero)
    if nonempty.any():
        out[nonempty] = np.add.reduceat(x, offsets[:-1][nonempty], axis=0)
    return out


def _sum_rows(ep, table: np.ndarray, key: np.ndarray, w, zero) -> np.ndarray:
    """sum_t w_t table[key_t] per episode (E, n), for a per-transition key (N,) into the rows of
    ``table`` (K, n) and weights w (N,) (None: all 1).

    In slices of whole episodes of about SLICE / n transitions, so no (N, n) array is built
    (on FrozenLake with a million episodes that would be gigabytes); the same sums as unsliced.
    """
    E, n = len(ep.lengths), table.shape[1]
    off = ep.offsets
    dtype = table.dtype if w is None else np.result_type(table, w)
    out = np.zeros((E, n), dtype=dtype)
    if dtype == object:
        out.fill(zero)
    step = max(1, SLICE // max(n, 1))
    e0 = 0
    while e0 < E:
        # the most episodes from e0 on with at most `step` transitions in all (at least one)
        e1 = max(e0 + 1, int(np.searchsorted(off, off[e0] + step, side="right")) - 1)
        lo, hi = off[e0], off[e1]
        if hi > lo:
            x = table[key[lo:hi]]
            if w is not None:
                x = x * w[lo:hi, None]
            out[e0:e1] = _segment_sums(x, ep.lengths[e0:e1], off[e0:e1 + 1] - lo, zero)
        e0 = e1
    return out


def _suffix_sums(ep, x: np.ndarray) -> np.ndarray:
    """y_t = sum_{t' >= t} x_t' within each episode, for a flat per-transition x (N,).

    Backwards from the longest episode's last step, one numpy step per time step over the
    episodes that reach it (longest first, so they are a prefix): y_t = x_t + y_{t+1}, the same
    additions as a reversed cumulative sum per episode, and exact on object arrays.
    """
    y = x.copy()
    L = ep.longest
    if L < 2:
        return y
    first = ep.offsets[:-1][np.argsort(-ep.lengths, kind="stable")]
    reaching = np.cumsum(np.bincount(ep.lengths, minlength=L + 1)[::-1])[::-1]  # [k]: episodes of >= k steps
    for t in range(L - 2, -1, -1):
        p = first[: reaching[t + 2]] + t  # the transitions at step t of the episodes with a step t + 1
        y[p] += y[p + 1]
    return y


def _pieces(mdp, ep) -> _Pieces:
    sparse = _is_sparse(mdp)
    exact = not sparse and mdp.pi.dtype == object
    zero = 0.0 if sparse else mdp.pi.flat[0] * 0 if mdp.pi.size else 0.0
    s, a, s2, t = ep.flat_states, ep.flat_actions, ep.flat_next_states, ep.flat_times
    gamma = mdp.gamma
    disc = np.array([gamma**k for k in range(ep.longest)], dtype=object if exact else float)
    dt = disc[t]
    G_t = _suffix_sums(ep, ep.flat_rewards * dt)  # sum_{t' >= t} gamma^t' r_t'
    G = np.zeros(len(ep.lengths), dtype=G_t.dtype)
    if G.dtype == object:
        G.fill(zero)
    nonempty = ep.lengths > 0
    G[nonempty] = G_t[ep.offsets[:-1][nonempty]]
    return _Pieces(s, a, s2, t, disc, dt, G_t, G, zero)


def _scores(mdp, ep, p: _Pieces, w=None) -> np.ndarray:
    """sum_t score_t w_t per episode (E, n); w None: sum_t score_t."""
    if _is_sparse(mdp):
        tr = _transitions(mdp, ep)
        return _sparse_rows(ep, mdp.x, mdp.tr_pair[tr], w, mdp.n)
    S, A, n = mdp.dlog_pi.shape
    key = p.s.astype(np.int64) * A + p.a
    return _sum_rows(ep, mdp.dlog_pi.reshape(S * A, n), key, w, p.zero)


def _extras(mdp, ep, p: _Pieces):
    """Start score, dynamics score, pathwise term and discount derivative, per episode."""
    if _is_sparse(mdp):
        n = mdp.n
        E = len(ep.lengths)
        starts = np.asarray(ep.starts, dtype=np.int64)
        item, par, val = mdp.drho.expand(starts)
        out = np.bincount(item * n + par, p.G[item] * val, minlength=E * n).reshape(E, n)
        tr = _transitions(mdp, ep)
        out = out + _sparse_rows(ep, mdp.p, tr, p.G_t, n)
        out = out + _sparse_rows(ep, mdp.q, tr, p.dt, n)
    else:
        S, A = mdp.pi.shape
        n = mdp.dgamma.shape[0]
        out = p.G[:, None] * mdp.dlog_rho0[ep.starts]
        key = (p.s.astype(np.int64) * A + p.a) * S + p.s2  # (s, a, s') flat
        out = out + _sum_rows(ep, mdp.dlog_P.reshape(S * A * S, n), key, p.G_t, p.zero)
        out = out + _sum_rows(ep, mdp.dr.reshape(S * A * S, n), key, p.dt, p.zero)
    if np.any(np.asarray(mdp.dgamma != 0)) and ep.longest > 1:
        # d gamma^t / d gamma = t gamma^(t-1), with Python ints t_ (a numpy integer times a Fraction
        # gives a Fraction of int64s, which overflow)
        coef = np.array([t_ * mdp.gamma ** (t_ - 1) if t_ > 0 else 0 for t_ in range(ep.longest)], dtype=p.disc.dtype)
        out = out + _per_episode(ep, ep.flat_rewards * coef[p.t], p.zero)[:, None] * mdp.dgamma[None, :]
    return out


def _transitions(mdp, ep) -> np.ndarray:
    """The sparse table's transition index of every step (cached on the episodes)."""
    hit = getattr(ep, "_sparse_tr", None)
    if hit is not None and hit[0] is mdp:
        return hit[1]
    tr = mdp.lookup(ep.flat_states, ep.flat_actions, ep.flat_next_states)
    ep._sparse_tr = (mdp, tr)
    return tr


def _sparse_rows(ep, csr, rows, w, n) -> np.ndarray:
    """sum_t w_t csr[rows_t] per episode (E, n), from the non-zeros only: one ``bincount`` into the
    (E, n) result.  Within an episode and parameter the terms are added in step order, starting
    from 0, as the dense route's ``reduceat`` adds them (its zero entries add nothing), so the two
    give the same floats."""
    E = len(ep.lengths)
    item, par, val = csr.expand(np.asarray(rows, dtype=np.int64))
    if w is not None:
        val = val * w[item]
    episode = ep.flat_episodes[item]
    return np.bincount(episode * n + par, val, minlength=E * n).reshape(E, n)


def estimate(name: str, mdp, ep, *, J=None, V=None, group: int = 8):
    """Per-episode gradient estimates of estimator ``name`` (see the module docstring).

    ``J`` is the constant baseline (the exact objective), ``V`` an array (L, S) or (S,) of
    state values for the value baseline (V_t with a horizon), ``group`` the group size of the
    group estimators (the episodes are taken in consecutive groups; the count must divide).
    """
    p = _pieces(mdp, ep)
    E = len(ep.lengths)
    if name == "reinforce":
        out = p.G[:, None] * _scores(mdp, ep, p)
    elif name == "reward_to_go":
        out = _scores(mdp, ep, p, p.G_t)
    elif name == "constant_baseline":
        out = _scores(mdp, ep, p, p.G_t - p.dt * J)
    elif name == "value_baseline":
        base = V[np.minimum(p.t, len(V) - 1), p.s] if np.ndim(V) == 2 else V[p.s]
        out = _scores(mdp, ep, p, p.G_t - p.dt * base)
    elif name == "no_discount_weighting":
        inv = np.array([1 / d for d in p.disc], dtype=p.disc.dtype)
        out = _scores(mdp, ep, p, p.G_t * inv[p.t])
    elif name in ("group_mean", "group_mean_loo"):
        if E % group:
            raise ValueError(f"{E} episodes do not split into groups of {group}")
        Gg = p.G.reshape(-1, group)
        total = Gg.sum(1, keepdims=True)
        base = (total / group) if name == "group_mean" else (total - Gg) / (group - 1)
        out = _scores(mdp, ep, p) * (Gg - base).reshape(-1)[:, None]
    else:
        raise ValueError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    if extra_terms_needed(mdp):
        out = out + _extras(mdp, ep, p)
    return out
