r"""Policy gradient estimators, computed per episode from sampled (or enumerated) episodes.

Every estimator returns an array of shape (episodes, parameters): one gradient estimate
per episode.  All work on the arrays of :class:`~pgverify.montecarlo.sampler.Episodes`
and on the derivatives of :class:`~pgverify.montecarlo.tabular.TabularMDP`, so the same
code runs on float arrays (samples) and on exact object arrays (enumerated trajectories,
for exact moments).  Notation: G_t = sum_{t' >= t} gamma^t' r_t' (discounted from 0),
G = G_0, score_t = grad log pi(a_t | s_t).

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
    if known is None:
        known = any(np.count_nonzero(x) for x in (mdp.dlog_rho0, mdp.dlog_P, mdp.dr, mdp.dgamma))
        mdp._extras_needed = known
    return known


def _pieces(mdp, ep):
    """Per-step arrays: mask, score (E, L, n), discounted rewards, G_t, discounts."""
    E, L = ep.actions.shape
    mask = ep.actions >= 0
    s = np.where(mask, ep.states, 0)
    a = np.where(mask, ep.actions, 0)
    s2 = np.where(mask, ep.next_states, 0)
    gamma = mdp.gamma
    disc = np.array([gamma**t for t in range(L)], dtype=mdp.pi.dtype if mdp.pi.dtype == object else float)
    zero = mdp.pi.flat[0] * 0 if mdp.pi.size else 0.0
    score = np.where(mask[:, :, None], mdp.dlog_pi[s, a], zero)
    R = np.where(mask, ep.rewards * disc[None, :], zero)  # gamma^t r_t
    G_t = np.flip(np.cumsum(np.flip(R, 1), 1), 1) if L else R  # sum_{t' >= t} gamma^t' r_t'
    return mask, s, a, s2, disc, score, R, G_t


def _extras(mdp, ep, pieces):
    mask, s, a, s2, disc, score, R, G_t = pieces
    E, L = ep.actions.shape
    zero = mdp.pi.flat[0] * 0 if mdp.pi.size else 0.0
    G = G_t[:, 0] if L else np.zeros(E)
    s0 = ep.states[:, 0] if L else np.zeros(E, dtype=int)
    out = G[:, None] * mdp.dlog_rho0[s0]
    dyn = np.where(mask[:, :, None], mdp.dlog_P[s, a, s2], zero)
    out = out + (dyn * G_t[:, :, None]).sum(1)
    dr = np.where(mask[:, :, None], mdp.dr[s, a, s2], zero)
    out = out + (dr * disc[None, :, None]).sum(1)
    if np.any(np.asarray(mdp.dgamma != 0)) and L > 1:
        t = np.arange(L)
        # int(t_): a numpy integer times a Fraction gives a Fraction of int64s, which overflow
        coef = np.array([int(t_) * mdp.gamma ** (int(t_) - 1) if t_ > 0 else 0 for t_ in t], dtype=disc.dtype)
        raw = np.where(mask, ep.rewards, zero)
        out = out + (raw * coef[None, :]).sum(1)[:, None] * mdp.dgamma[None, :]
    return out


def estimate(name: str, mdp, ep, *, J=None, V=None, group: int = 8):
    """Per-episode gradient estimates of estimator ``name`` (see the module docstring).

    ``J`` is the constant baseline (the exact objective), ``V`` an array (L, S) or (S,) of
    state values for the value baseline (V_t with a horizon), ``group`` the group size of the
    group estimators (the episodes are taken in consecutive groups; the count must divide).
    """
    pieces = _pieces(mdp, ep)
    mask, s, a, s2, disc, score, R, G_t = pieces
    E, L = ep.actions.shape
    G = G_t[:, 0] if L else np.zeros(E)
    if name == "reinforce":
        out = G[:, None] * score.sum(1)
    elif name == "reward_to_go":
        out = (score * G_t[:, :, None]).sum(1)
    elif name == "constant_baseline":
        out = (score * (G_t - disc[None, :] * J)[:, :, None]).sum(1)
    elif name == "value_baseline":
        Vt = V[np.minimum(np.arange(L), len(V) - 1)][:, :] if np.ndim(V) == 2 else None
        base = Vt[np.arange(L)[None, :], s] if Vt is not None else V[s]
        out = (score * (G_t - disc[None, :] * base)[:, :, None]).sum(1)
    elif name == "no_discount_weighting":
        inv = np.array([1 / d for d in disc], dtype=disc.dtype)
        out = (score * (G_t * inv[None, :])[:, :, None]).sum(1)
    elif name in ("group_mean", "group_mean_loo"):
        if E % group:
            raise ValueError(f"{E} episodes do not split into groups of {group}")
        Gg = G.reshape(-1, group)
        total = Gg.sum(1, keepdims=True)
        base = (total / group) if name == "group_mean" else (total - Gg) / (group - 1)
        out = score.sum(1) * (Gg - base).reshape(-1)[:, None]
    else:
        raise ValueError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    if extra_terms_needed(mdp):
        out = out + _extras(mdp, ep, pieces)
    return out
