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

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from .tabular import TabularMDP

__all__ = ["Episodes", "sample", "DEFAULT_MAX_STEPS"]

DEFAULT_MAX_STEPS = 10_000


@dataclass
class Episodes:
    """Sampled (or enumerated) episodes in a ragged layout: E episodes, N transitions, no padding.

    The transitions are flat arrays of length N in episode-major order: step t of episode e is
    entry ``offsets[e] + t`` for t < ``lengths[e]`` (``offsets`` has E + 1 entries, the last
    being N).  ``flat_states[i]`` is s_t (an index into ``mdp.states``), ``flat_actions[i]`` and
    ``flat_next_states[i]`` the action and next state, ``flat_rewards[i]`` the reward r_t
    (undiscounted).  ``starts[e]`` is s_0, kept apart because an episode that starts in a
    terminal state has no steps (grad log rho0 still needs it).  ``cut`` counts the episodes
    cut at ``max_steps`` before they ended.

    The padded arrays (E, L = longest length) ``states``, ``actions``, ``next_states`` (-1 after
    the end) and ``rewards`` (0 after the end) are built on first use and cached, for callers
    that want them; the sampler and the estimators never build them (on FrozenLake they were
    about 90% padding).
    """

    starts: np.ndarray
    lengths: np.ndarray
    flat_states: np.ndarray
    flat_actions: np.ndarray
    flat_next_states: np.ndarray
    flat_rewards: np.ndarray
    cut: int = 0
    seed: int | None = None
    max_steps: int = 0
    tail_bound: float = 0.0

    def __post_init__(self):
        n = int(np.sum(self.lengths))
        flats = (self.flat_states, self.flat_actions, self.flat_next_states, self.flat_rewards)
        if np.ndim(self.starts) != 1 or np.ndim(self.lengths) != 1 or len(self.starts) != len(self.lengths):
            raise ValueError("Episodes: starts and lengths must be arrays (E,) of the same length")
        if any(np.ndim(x) != 1 or len(x) != n for x in flats):
            raise ValueError(f"Episodes: the flat arrays must have lengths.sum() = {n} entries "
                             "(padded (E, L) arrays go through Episodes.from_padded)")

    @property
    def num_episodes(self) -> int:
        return len(self.lengths)

    @cached_property
    def offsets(self) -> np.ndarray:
        """int64 (E + 1,): episode e's transitions are ``offsets[e]:offsets[e + 1]``."""
        out = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=out[1:])
        return out

    @cached_property
    def longest(self) -> int:
        return int(np.max(self.lengths, initial=0))

    @cached_property
    def flat_episodes(self) -> np.ndarray:
        """int64 (N,): the episode of each transition."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    @cached_property
    def flat_times(self) -> np.ndarray:
        """int64 (N,): the step t of each transition within its episode."""
        return np.arange(len(self.flat_states), dtype=np.int64) - np.repeat(self.offsets[:-1], self.lengths)

    def _padded(self, flat: np.ndarray, fill) -> np.ndarray:
        out = np.full((len(self.lengths), self.longest), fill, dtype=flat.dtype)
        out[self.flat_episodes, self.flat_times] = flat
        return out

    @cached_property
    def states(self) -> np.ndarray:
        """(E, L): ``states[e, t]`` = s_t, -1 after the end (built on first use)."""
        return self._padded(self.flat_states, -1)

    @cached_property
    def actions(self) -> np.ndarray:
        """(E, L): a_t, -1 after the end (built on first use)."""
        return self._padded(self.flat_actions, -1)

    @cached_property
    def next_states(self) -> np.ndarray:
        """(E, L): s_{t+1}, -1 after the end (built on first use)."""
        return self._padded(self.flat_next_states, -1)

    @cached_property
    def rewards(self) -> np.ndarray:
        """(E, L): r_t undiscounted, 0 after the end, in the rewards' own number type (built on first use)."""
        r = self.flat_rewards
        return self._padded(r, r[0] * 0 if r.dtype == object and len(r) else 0)

    def take(self, idx) -> Episodes:
        """The episodes ``idx`` (indices, repeats allowed), in that order; ``cut``, ``seed`` and the
        rest are kept as they are."""
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        new = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=new[1:])
        pos = np.arange(new[-1], dtype=np.int64) + np.repeat(self.offsets[:-1][idx] - new[:-1], lengths)
        return replace(self, starts=self.starts[idx], lengths=lengths, flat_states=self.flat_states[pos],
                       flat_actions=self.flat_actions[pos], flat_next_states=self.flat_next_states[pos],
                       flat_rewards=self.flat_rewards[pos])

    @classmethod
    def concatenate(cls, parts, **fields) -> Episodes:
        """The episodes of ``parts`` one after another (cuts added, the widest tail bound; ``fields``
        override the rest, e.g. the seed).  Offsets follow from the lengths: nothing to shift."""
        first = parts[0]
        cat = {name: np.concatenate([getattr(p, name) for p in parts])
               for name in ("starts", "lengths", "flat_states", "flat_actions", "flat_next_states", "flat_rewards")}
        merged = {"cut": sum(p.cut for p in parts), "seed": first.seed, "max_steps": first.max_steps,
                  "tail_bound": max(p.tail_bound for p in parts), **fields}
        return cls(**cat, **merged)

    @classmethod
    def from_padded(cls, states, actions, next_states, rewards, lengths, cut: int = 0, seed=None,
                    max_steps: int = 0, tail_bound: float = 0.0, starts=None) -> Episodes:
        """From padded (E, L) arrays (the layout of earlier versions); ``starts`` defaults to
        ``states[:, 0]``, which an episode of 0 steps does not have in padded form."""
        lengths = np.asarray(lengths, dtype=np.int64)
        states, actions, next_states, rewards = (np.asarray(x) for x in (states, actions, next_states, rewards))
        if starts is None:
            if states.shape[1] == 0 or np.any(states[:, 0] < 0):
                raise ValueError("from_padded: give starts for episodes of 0 steps")
            starts = states[:, 0]
        e = np.repeat(np.arange(len(lengths)), lengths)
        t = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return cls(np.asarray(starts), lengths, states[e, t], actions[e, t], next_states[e, t], rewards[e, t],
                   cut, seed, max_steps, tail_bound)


def _draw(rng, probs: np.ndarray, count: int) -> np.ndarray:
    """``count`` categorical draws from one row ``probs`` (inverse CDF, one uniform each)."""
    cdf = np.cumsum(probs)
    u = rng.random(count) * cdf[-1]
    # the number of CDF entries <= u (the CDF is non-decreasing)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(probs) - 1)


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
        self.last = np.arange(rows) * width + (width - 1)  # the flat position of each row's last column

    def draw(self, rng, rows: np.ndarray) -> np.ndarray:
        """One column per entry of ``rows``, as its flat position row * width + column."""
        pos = np.searchsorted(self.flat, rows + rng.random(len(rows)), side="right")
        return np.minimum(pos, self.last[rows])


def step_limit(horizon, gamma: float, max_steps: int | None) -> int:
    """How many steps an episode may take: the horizon, else ``max_steps``, else gamma^t < 1e-12
    (at most :data:`DEFAULT_MAX_STEPS`) for a discounted task, else :data:`DEFAULT_MAX_STEPS`."""
    if horizon is not None:
        return horizon
    if max_steps is not None:
        return max_steps
    if gamma < 1:
        return min(DEFAULT_MAX_STEPS, int(np.ceil(np.log(1e-12) / np.log(gamma))))
    return DEFAULT_MAX_STEPS


def lockstep(rng, table, code_next: np.ndarray, terminal: np.ndarray, s: np.ndarray, limit: int,
             horizon, gamma: float, max_abs_reward: float):
    """Run every episode in lockstep from the start states ``s``: one ``table.draw`` per step over
    the live episodes gives each a code, whose next state is ``code_next[code]``.

    Returns (lengths, flat codes in episode-major order, cut, tail): step t of episode e is at
    offsets[e] + t (offsets from the lengths), written once, nothing padded; ``cut`` episodes were
    still running after ``limit`` steps (without a horizon), and ``tail`` bounds what a cut leaves out
    of a discounted return (infinite with discount 1).
    """
    E = len(s)
    code_alive = ~terminal[code_next]
    never_ends = bool(code_alive.all())
    idx = np.nonzero(~terminal[s])[0]
    cur = s[idx]
    steps = []  # per time step: (indices of the episodes alive, their codes)
    while len(idx) and len(steps) < limit:
        code = table.draw(rng, cur)
        steps.append((idx, code))
        if never_ends:
            cur = code_next[code]
        else:
            keep = code_alive[code]
            idx = idx[keep]
            cur = code_next[code[keep]]
    cut = len(idx) if horizon is None else 0
    tail = 0.0
    if cut and gamma < 1:
        tail = float(gamma**limit * max_abs_reward / (1 - gamma))
    elif cut:
        tail = float("inf")
    lengths = np.zeros(E, dtype=np.int64)
    for t, (ix, _) in enumerate(steps):
        lengths[ix] = t + 1
    offsets = np.zeros(E, dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    flat = np.empty(int(lengths.sum()), dtype=np.int64)
    for t, (ix, code) in enumerate(steps):
        flat[offsets[ix] + t] = code
    return lengths, flat, cut, tail


def sample(mdp: TabularMDP, episodes: int, seed: int | None = 0, max_steps: int | None = None) -> Episodes:
    """Sample ``episodes`` episodes at the parameter point (see the module docstring)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    limit = step_limit(mdp.horizon, mdp.gamma, max_steps)
    s = _draw(rng, mdp.rho0, episodes)
    S, A = mdp.pi.shape
    # one draw per step of the triple (s, a, s') from pi(a|s) P(s'|s, a): row s of a table of width A * S,
    # whose flat position code = (s * A + a) * S + s' names the transition
    joint = _Table((mdp.pi[:, :, None] * mdp.P).reshape(S, A * S))
    # the smallest integer type that holds -1 and every index (less memory to write)
    itype = np.int16 if max(S, A) < 2**15 else np.int32
    code_next = np.tile(np.arange(S), S * A)
    lengths, flat_code, cut, tail = lockstep(rng, joint, code_next, mdp.terminal, s, limit, mdp.horizon, mdp.gamma,
                                             float(np.abs(mdp.r).max(initial=0.0)))
    code_state = np.repeat(np.arange(S, dtype=itype), A * S)
    code_action = np.tile(np.repeat(np.arange(A, dtype=itype), S), S)
    return Episodes(s.astype(itype), lengths, code_state[flat_code], code_action[flat_code],
                    code_next.astype(itype)[flat_code], mdp.r.ravel()[flat_code], cut, seed, limit, tail)
