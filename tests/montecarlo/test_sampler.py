"""The vectorised sampler: reproducible by seed, the right distribution, lengths and cuts reported."""
import numpy as np
import pytest

import pgverify
from pgverify.montecarlo import sample, tabulate

from ..conftest import CASE_FILES, CASES


def test_same_seed_same_episodes():
    mdp = tabulate(pgverify.load_case(CASES / "short_corridor.yaml"))
    a, b = sample(mdp, 1000, seed=7), sample(mdp, 1000, seed=7)
    for name in ("states", "actions", "next_states", "rewards", "lengths"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(sample(mdp, 1000, seed=8).lengths, a.lengths)


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_mean_return_matches_the_exact_objective(path):
    """With a fixed seed this is deterministic; the bound is 4.5 standard errors (two-sided
    false-alarm probability 7e-6 for a correct sampler, so a failure means a wrong distribution)."""
    case = pgverify.load_case(path)
    mdp = tabulate(case)
    ep = sample(mdp, 20_000, seed=2026)
    discounts = mdp.gamma ** np.arange(ep.rewards.shape[1])
    G = (ep.rewards * discounts).sum(axis=1)
    J = pgverify.check(case, engines=("bellman",)).objective.float
    se = G.std(ddof=1) / np.sqrt(len(G))
    assert abs(G.mean() - J) <= 4.5 * se + ep.tail_bound
    if case.terminal:
        assert ep.cut == 0
    else:  # a continuing task: every episode is cut where gamma^L < 1e-12, and the bound says so
        assert ep.cut == 20_000 and 0 < ep.tail_bound < 1e-10


def test_structure_of_the_arrays():
    case = pgverify.load_case(CASES / "finite_horizon_chain.yaml")
    mdp = tabulate(case)
    ep = sample(mdp, 500, seed=1)
    assert ep.states.shape == (500, 3) and (ep.lengths <= 3).all()  # the horizon
    for e in range(20):
        L = ep.lengths[e]
        assert (ep.actions[e, :L] >= 0).all() and (ep.actions[e, L:] == -1).all()
        assert (ep.states[e, 1:L] == ep.next_states[e, : L - 1]).all()  # s_{t+1} follows s_t


def test_cut_episodes_are_reported():
    mdp = tabulate(pgverify.load_case(CASES / "short_corridor.yaml"))
    ep = sample(mdp, 2000, seed=3, max_steps=5)
    assert ep.cut > 0 and ep.max_steps == 5
    assert ep.cut == int(((ep.lengths == 5) & (ep.next_states[:, 4] != mdp.states.index("G"))).sum())
