"""The episodes that :func:`pgverify.testing.assert_unbiased` hands to a user's estimator.

One format for sampled episodes and for enumerated trajectories, so the same estimator
runs on both (see :class:`EpisodeBatch` and ``docs/testing.md``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..model import Case
from ..montecarlo import Episodes, TabularMDP

__all__ = ["EpisodeBatch", "batch_from_episodes"]


@dataclass(frozen=True)
class EpisodeBatch:
    """E episodes as numpy arrays, padded to L = the longest episode of the batch.

    Step ``t`` of episode ``e`` exists for ``t < lengths[e]``; the entries at ``t >= lengths[e]``
    are padding: ``-1`` in the integer arrays and ``0.0`` in ``rewards``.  Mask them
    (``batch.mask``) before indexing: numpy reads index -1 as the last element, silently.

    Attributes
    ----------
    states : numpy.ndarray of int64, shape (E, L)
        ``states[e, t]`` is s_t, an index into ``state_names``.
    actions : numpy.ndarray of int64, shape (E, L)
        ``actions[e, t]`` is a_t, an index into ``action_names[states[e, t]]``: the action list of
        that state, in the order of the case (the same list for every state when the case file
        gives one ``actions`` list).
    rewards : numpy.ndarray of float64, shape (E, L)
        ``rewards[e, t]`` is r(s_t, a_t, s_{t+1}), *not* discounted.
    next_states : numpy.ndarray of int64, shape (E, L)
        s_{t+1}; at the last step of an episode that ended, a terminal state.
    lengths : numpy.ndarray of int64, shape (E,)
        The number of steps of each episode (0 for an episode that starts in a terminal state).
    gamma : float
        The discount at the point.
    horizon : int or None
        The case's horizon (episodes end after at most this many steps).
    state_names : tuple of str
    action_names : tuple of tuple of str
        Per state, its actions (an empty tuple for a terminal state).
    terminal : numpy.ndarray of bool, shape (S,)
    parameter_names : tuple of str
        The parameters, in the order the estimator's output must follow.
    theta : dict
        Parameter name -> its value at the point, as a float.
    cut : int
        How many episodes were cut at the sampler's step limit before they ended (only without
        a horizon; their return is missing the rest).
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    lengths: np.ndarray
    gamma: float
    horizon: int | None
    state_names: tuple
    action_names: tuple
    terminal: np.ndarray
    parameter_names: tuple
    theta: dict
    cut: int = 0

    @property
    def num_episodes(self) -> int:
        return len(self.lengths)

    @property
    def mask(self) -> np.ndarray:
        """bool (E, L): True where step t of episode e exists (``t < lengths[e]``)."""
        return np.arange(self.states.shape[1])[None, :] < self.lengths[:, None]

    def slice(self, lo: int, hi: int) -> EpisodeBatch:
        """Episodes ``lo:hi``, padded to their own longest length."""
        lengths = self.lengths[lo:hi]
        L = int(lengths.max(initial=0))
        return replace(self, states=self.states[lo:hi, :L], actions=self.actions[lo:hi, :L],
                       rewards=self.rewards[lo:hi, :L], next_states=self.next_states[lo:hi, :L], lengths=lengths,
                       cut=0)

    def __repr__(self) -> str:
        return (f"EpisodeBatch(episodes={self.num_episodes}, longest={self.states.shape[1]}, gamma={self.gamma:g}, "
                f"parameters={list(self.parameter_names)})")


def batch_from_episodes(ep: Episodes, mdp: TabularMDP, case: Case) -> EpisodeBatch:
    """The sampler's (or the enumeration's) :class:`~pgverify.montecarlo.Episodes` as an EpisodeBatch.

    Rewards and the point become float64 (enumerated episodes hold exact numbers).
    """
    E, L = ep.actions.shape
    mask = np.arange(L)[None, :] < np.asarray(ep.lengths)[:, None]
    states = np.where(mask, np.asarray(ep.states)[:, :L] if ep.states.shape[1] >= L else -1, -1)
    rewards = np.where(mask, np.asarray(ep.rewards, dtype=object).astype(float) if L else np.zeros((E, 0)), 0.0)
    theta = {p.name: float(case.point[p]) for p in case.parameters}
    return EpisodeBatch(
        states=states.astype(np.int64), actions=np.where(mask, ep.actions, -1).astype(np.int64),
        rewards=rewards.astype(np.float64), next_states=np.where(mask, ep.next_states, -1).astype(np.int64),
        lengths=np.asarray(ep.lengths, dtype=np.int64), gamma=float(mdp.gamma), horizon=mdp.horizon,
        state_names=tuple(mdp.states), action_names=tuple(tuple(a) for a in mdp.actions),
        terminal=np.asarray(mdp.terminal, dtype=bool), parameter_names=tuple(mdp.parameters), theta=theta,
        cut=int(ep.cut))
