"""A vectorised episode sampler: all episodes advance in lockstep, one numpy step per time step.

Seeded with :class:`numpy.random.Generator` (PCG64), so the same seed gives the same
episodes on any machine.  Episodes end on entering a terminal state or after the
horizon; without a horizon they are cut at ``max_steps``, and how many were cut is
reported (``Episodes.cut``), never hidden.  With a discount below 1 and no horizon the
default cut is where gamma^L falls below 1e-12 (at most :data:`DEFAULT_MAX_STEPS`), and
``Episodes.tail_bound`` = gamma^L max|r| / (1 - gamma) bounds what the cut leaves out of
any episode's return.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tabular import TabularMDP

__all__ = ["Episodes", "sample", "DEFAULT_MAX_STEPS"]

DEFAULT_MAX_STEPS = 10_000


@dataclass
class Episodes:
    """Sampled episodes, as arrays (E episodes, L = longest length).

    ``states[e, t]`` is s_t (an index into ``mdp.states``; -1 after the end), ``actions[e, t]``
    and ``next_states[e, t]`` the action and next state of step t (-1 after the end),
    ``rewards[e, t]`` the reward r_t (undiscounted; 0 after the end) and ``lengths[e]`` the
    number of steps.  ``cut`` counts the episodes cut at ``max_steps`` before they ended.
    """

    states: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray
    cut: int
    seed: int | None
    max_steps: int
    tail_bound: float = 0.0


def _draw(rng, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (inverse CDF, vectorised)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


class _Table:
    """Categorical draws from many fixed rows at once: row r's CDF is shifted to [r, r + 1], so one
    ``searchsorted`` over the flattened table draws for any mix of rows (O(log size) per draw)."""

    def __init__(self, probs: np.ndarray):
        rows, width = probs.shape
        totals = probs.sum(axis=1, keepdims=True)
        cdf = np.cumsum(probs / np.where(totals > 0, totals, 1), axis=1)
        cdf[:, -1] = 1.0  # no draw can fall past the last column through rounding
        self.flat = (cdf + np.arange(rows)[:, None]).ravel()
        self.width = width

    def draw(self, rng, rows: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.flat, rows + rng.random(len(rows)), side="right")
        return np.minimum(pos - rows * self.width, self.width - 1)


def sample(mdp: TabularMDP, episodes: int, seed: int | None = 0, max_steps: int | None = None) -> Episodes:
    """Sample ``episodes`` episodes at the parameter point (see the module docstring)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    if mdp.horizon is not None:
        limit = mdp.horizon
    elif max_steps is not None:
        limit = max_steps
    elif mdp.gamma < 1:
        limit = min(DEFAULT_MAX_STEPS, int(np.ceil(np.log(1e-12) / np.log(mdp.gamma))))
    else:
        limit = DEFAULT_MAX_STEPS
    E = episodes
    s = _draw(rng, np.broadcast_to(mdp.rho0, (E, len(mdp.rho0))))
    S, A = mdp.pi.shape
    # one draw per step of the pair (a, s') from pi(a|s) P(s'|s, a): row s of a table of width A * S
    joint = _Table((mdp.pi[:, :, None] * mdp.P).reshape(S, A * S))
    # the smallest integer type that holds -1 and every index (less memory to fill and scatter)
    itype = np.int16 if max(S, A) < 2**15 else np.int32
    alive = ~mdp.terminal[s]
    idx = np.nonzero(alive)[0]
    cur = s[idx]
    steps = []  # per time step: (indices of the episodes alive, s, a, s_next) for those only
    t = 0
    while len(idx) and t < limit:
        pair = joint.draw(rng, cur)
        a, s2 = pair // S, pair % S
        steps.append((idx, cur, a, s2))
        keep = ~mdp.terminal[s2]
        idx, cur = idx[keep], s2[keep]
        t += 1
    cut = len(idx) if mdp.horizon is None else 0
    tail = 0.0
    if cut and mdp.gamma < 1:
        tail = float(mdp.gamma**limit * np.abs(mdp.r).max(initial=0.0) / (1 - mdp.gamma))
    elif cut:
        tail = float("inf")
    L = len(steps)
    if steps:  # one scatter of all steps into the padded (E, L) arrays
        ix = np.concatenate([st[0] for st in steps])
        pos = ix * L + np.repeat(np.arange(L), [len(st[0]) for st in steps])
        st_all, a_all, s2_all = (np.concatenate([st[k] for st in steps]) for k in (1, 2, 3))
        lengths = np.bincount(ix, minlength=E).astype(np.int64)
    else:
        pos = st_all = a_all = s2_all = np.zeros(0, dtype=np.int64)
        lengths = np.zeros(E, dtype=np.int64)
    states = np.full((E, L), -1, dtype=itype)
    actions = np.full((E, L), -1, dtype=itype)
    next_states = np.full((E, L), -1, dtype=itype)
    rewards = np.zeros((E, L))
    states.ravel()[pos], actions.ravel()[pos], next_states.ravel()[pos] = st_all, a_all, s2_all
    rewards.ravel()[pos] = mdp.r[st_all, a_all, s2_all]
    return Episodes(states, actions, next_states, rewards, lengths, cut, seed, limit, tail)
